"""/oncall and the queue's header, rendered: the rotations, the schedule with its gaps, the
overrides, who is on call now (time pinned at a winter date)."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine

from tests.factories import cookie_login

WINTER = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)


def setup(client, tenant):
    body = {
        "name": "Servers",
        "participants": [tenant.users["eng"], tenant.users["eng2"], tenant.users["admin"]],
        "shift_length_days": 1,
        "handoff_time": "09:00",
        "start_date": "2026-01-12",
        "timezone": "UTC",
    }
    response = client.post("/api/v1/oncall/rotations", json=body, headers=tenant.auth("admin"))
    assert response.status_code == 201
    client.patch(
        f"/api/v1/users/{tenant.users['eng2']}",
        json={"active": False},
        headers=tenant.auth("admin"),
    )


def test_oncall_page_shows_rotation_schedule_and_gap(client, tenant):
    setup(client, tenant)
    with time_machine.travel(WINTER, tick=False):
        cookie_login(client, tenant.users["eng"])
        page = client.get("/oncall")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        # 14 January 09:00Z is shift 2: the admin's, until 15 January 09:00Z.
        assert "On call now:" in html and "Alpha MSP Owner" in html
        assert 'data-start="2026-01-14T12:00:00Z" data-end="2026-01-15T09:00:00Z"' in html
        # 16 January is eng2's (deactivated): a gap.
        assert 'data-source="gap" data-rotation-id' in html and "Nobody (gap)" in html
        assert 'data-start="2026-01-16T09:00:00Z" data-end="2026-01-17T09:00:00Z"' in html
        assert "Take this shift" in html and "Create calendar link" in html
        queue = client.get("/escalations").get_data(as_text=True)
        assert 'id="queue-on-call"' in queue and "Alpha MSP Owner" in queue


def test_technician_sees_the_schedule_but_cannot_take_shifts(client, tenant):
    setup(client, tenant)
    with time_machine.travel(WINTER, tick=False):
        cookie_login(client, tenant.users["tech"])
        html = client.get("/oncall").get_data(as_text=True)
    assert "Servers" in html and "Take this shift" not in html and "calendar-create" not in html


def test_nobody_on_call_is_said(client, tenant):
    cookie_login(client, tenant.users["eng"])
    assert "Nobody is on call now." in client.get("/escalations").get_data(as_text=True)


def test_settings_has_the_business_hours_section(client, tenant):
    cookie_login(client, tenant.users["admin"])
    html = client.get("/settings").get_data(as_text=True)
    assert 'id="hours-form"' in html and "settings_hours.js" in html

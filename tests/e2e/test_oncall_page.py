"""/oncall in headless Chromium against the real stack: an engineer sees the schedule,
takes a colleague's shift (an override for themselves), sees the queue header name them,
and creates and rotates their calendar link (the old one answers 404)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import Stack, Tenant

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]


def test_take_a_shift_and_rotate_the_calendar_link(stack: Stack, acme: Tenant, sign_in, artifacts):
    erin, sam, owner = acme["eng"], acme["eng2"], acme["admin"]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    rotation = stack.api(
        owner.token,
        "POST",
        "/oncall/rotations",
        json={
            "name": "After hours",
            "participants": [sam.id, erin.id],
            "shift_length_days": 1,
            "handoff_time": "00:00",
            "start_date": yesterday,
            "timezone": "UTC",
        },
    )
    assert rotation.status_code == 201, rotation.text
    page = sign_in(erin, "/oncall")
    expect(page.locator("#rotations")).to_contain_text("Sam Senior → Erin Engineer")
    sams = page.locator("#schedule tr.segment", has_text="Sam Senior")
    expect(sams.first).to_be_visible()
    start, end = sams.first.get_attribute("data-start"), sams.first.get_attribute("data-end")
    sams.first.get_by_role("button", name="Take this shift").click()
    expect(page.locator("#overrides")).to_contain_text("Erin Engineer covers")
    page.screenshot(path=str(artifacts / "oncall.png"), full_page=True)
    shifts = stack.api(
        erin.token, "GET", "/oncall/shifts", params={"from": start, "to": end}
    ).json()["items"]
    assert [(s["source"], s["user"]["id"], s["end"]) for s in shifts][-1] == (
        "override",
        erin.id,
        end,
    )

    create = page.get_by_role("button", name="Create calendar link")
    create.click()
    field = page.locator("#calendar-url")
    expect(field).to_be_visible()
    first_url = field.input_value()
    feed = requests.get(first_url.replace(first_url.split("/api/")[0], stack.url), timeout=10)
    assert feed.status_code == 200 and feed.headers["Content-Type"].startswith("text/calendar")
    assert "SUMMARY:On call: After hours" in feed.text
    page.get_by_role("button", name="Rotate calendar link").click()
    expect(field).not_to_have_value(first_url)
    old = requests.get(first_url.replace(first_url.split("/api/")[0], stack.url), timeout=10)
    assert old.status_code == 404

    queue = sign_in(owner, "/escalations")
    expect(queue.locator("#queue-on-call")).to_contain_text("On call now:")

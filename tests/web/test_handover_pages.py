"""The session page's Release / Reassign panel and timeline, the queue's reminder line,
and the /settings escalation-policy section, through Flask's test client (the browser
flow is in tests/e2e/test_handover_flow.py)."""

from __future__ import annotations

import re

from tests.factories import make_tenant, new_handoff
from tests.web.test_pages import (
    app,  # noqa: F401 - the CSRF-on app fixture
    email_of,
    login,
    signed_in,
)

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


def assert_csp_clean(html: str) -> None:
    assert not INLINE_SCRIPT.search(html)
    assert not INLINE_HANDLER.search(html)
    assert "style=" not in html and "javascript:" not in html


def test_the_pilot_page_has_release_reassign_and_the_timeline(app):  # noqa: F811
    tenant = make_tenant("Alpha MSP")
    client = app.test_client()
    handoff = new_handoff(client, tenant)
    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
    html = signed_in(app, "Alpha MSP", "eng").get(f"/pilot/{handoff['session_id']}").text
    # One click away, in the brief: Release… and Reassign… open their forms.
    assert re.search(r'id="release-open" class="button" aria-expanded="false"', html)
    assert re.search(r'id="reassign-open" class="button" aria-expanded="false"', html)
    assert ">Release to the queue</button>" in html and ">Reassign</button>" in html
    assert 'id="reassign-reason"' in html  # a reassignment says why
    # Every other senior of the account is offered, nobody else.
    options = re.findall(r'<option value="(\d+)">', html)
    assert sorted(map(int, options)) == sorted(tenant.users[who] for who in ("admin", "eng2"))
    # The claimer lands in the chat: their first message is the first action.
    assert re.search(r'<textarea id="message-body"[^>]* autofocus>', html)
    assert 'id="timeline"' in html and "pilot_timeline.js" in html
    assert_csp_clean(html)


def test_the_technician_sees_the_timeline_but_no_hand_on_panel(app):  # noqa: F811
    tenant = make_tenant("Alpha MSP")
    handoff = new_handoff(app.test_client(), tenant)
    html = signed_in(app, "Alpha MSP", "tech").get(f"/pilot/{handoff['session_id']}").text
    assert 'id="timeline"' in html
    assert 'id="handoff-actions"' not in html


def test_settings_shows_the_policy_section_to_admins_only(app):  # noqa: F811
    make_tenant("Alpha MSP")
    admin = app.test_client()
    assert login(admin, email_of("Alpha MSP", "owner"), "owner-password").status_code == 303
    html = admin.get("/settings").text
    assert 'id="escalation-policy"' in html and "settings_policy.js" in html
    for field in ("renotify_after_minutes", "renotify_max", "escalate_to_admins_after_minutes"):
        assert f'name="{field}"' in html
    assert_csp_clean(html)
    assert signed_in(app, "Alpha MSP", "eng").get("/settings").status_code == 403


def test_analytics_shows_time_to_claim_and_the_admin_step_count(app):  # noqa: F811
    from datetime import UTC, datetime, timedelta

    import time_machine

    from models import handoff_steps, rollup

    tenant = make_tenant("Alpha MSP")
    client = app.test_client()
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # mid-month: no boundary in the way
    with time_machine.travel(now - timedelta(minutes=30), tick=False) as clock:
        first = new_handoff(client, tenant)
        second = new_handoff(client, tenant)
        clock.move_to(now - timedelta(minutes=14))  # 16 minutes in: both reached the admins
        handoff_steps.run_due_steps()
        clock.move_to(now - timedelta(minutes=10))  # claimed 20 minutes after creation
        client.post(f"/api/v1/escalations/{first['id']}/claim", headers=tenant.auth("eng"))
        clock.move_to(now)
        rollup.roll_up()
        html = signed_in(app, "Alpha MSP", "eng").get("/analytics").text
    assert second["status"] == "open"
    assert re.search(r'data-metric="avg_time_to_claim_minutes">20(\.0)?<', html), html
    assert 'data-metric="escalated_to_admins">2<' in html

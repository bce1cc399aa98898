"""Unclaimed handoffs through the real stack: web, a Celery worker, beat, Redis and an SMTP
server, with the policy's minutes shortened to seconds (POLICY_MINUTE_SECONDS, test-only).

Nobody is connected, so every senior is offline: the new handoff emails the admin and the
engineer, each reminder emails them again, and the admin step emails the admin. The emails
are counted at the SMTP server; a handoff claimed at once gets no reminder at all.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from tests.integration import broker
from tests.integration.conftest import THREE_ROLES
from tests.integration.services import create_account, wait_for
from workers.names import RUN_HANDOFF_STEPS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

MINUTE_SECONDS = 2  # one policy "minute": reminders at 4 s and 8 s, the admins at 10 s
SHORT_POLICY = {
    "POLICY_MINUTE_SECONDS": str(MINUTE_SECONDS),
    "HANDOFF_STEPS_INTERVAL_SECONDS": "1",
}


@THREE_ROLES
def test_reminders_and_the_admin_step_email_each_recipient_once(
    stack_env, smtp_sink, web_server, celery_worker, celery_beat
):
    stack_env.update(SHORT_POLICY)
    owner = create_account(stack_env, owner_email="owner@steps.test")
    web = web_server()
    # DEBUG: the worker logs the routine ticks too, which the test counts.
    worker = celery_worker(extra_args=("--loglevel=DEBUG",))
    celery_beat()

    def api(method: str, path: str, token: str, **kwargs) -> requests.Response:
        return requests.request(
            method,
            f"{web.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            **kwargs,
        )

    tokens = {"admin": owner["token"]}
    for who, role in (("tech", "technician"), ("eng", "engineer")):
        created = api(
            "POST",
            "/users",
            owner["token"],
            json={"name": who.title(), "email": f"{who}@steps.test", "role": role},
        )
        assert created.status_code == 201, created.text
        tokens[who] = created.json()["token"]
    policy = api(
        "PATCH",
        "/account",
        owner["token"],
        json={
            "renotify_after_minutes": 2,
            "renotify_max": 2,
            "escalate_to_admins_after_minutes": 5,
        },
    )
    assert policy.status_code == 200, policy.text

    def escalate(title: str) -> dict:
        session = api("POST", "/sessions", tokens["tech"], json={"title": title, "snapshot": {}})
        response = api(
            "POST", f"/sessions/{session.json()['id']}/escalate", tokens["tech"],
            json={"reason": "Stuck"},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        return response.json()

    unclaimed = escalate("Printer queue stuck")
    claimed = escalate("Claimed at once")
    taken = api("POST", f"/escalations/{claimed['id']}/claim", tokens["eng"])
    assert taken.status_code == 200, taken.text

    def mail_about(handoff_id: int) -> Counter:
        return Counter(
            (m["X-Escalation-Event"], m.rcpt_tos[0])
            for m in smtp_sink.messages
            if m["X-Escalation-Handoff-Id"] == str(handoff_id)
        )

    expected = Counter(
        {
            ("handoff.created", "owner@steps.test"): 1,
            ("handoff.created", "eng@steps.test"): 1,
            ("handoff.reminder", "owner@steps.test"): 2,
            ("handoff.reminder", "eng@steps.test"): 2,
            ("handoff.unclaimed", "owner@steps.test"): 1,
        }
    )
    wait_for(
        lambda: mail_about(unclaimed["id"]) == expected,
        timeout=60,
        interval=0.5,
        message=f"the step emails (got {mail_about(unclaimed['id'])})",
    )
    # Several more scans of the due steps, and every email they could have sent: nothing
    # more arrives, for either handoff.
    broker.wait_more_runs(worker, RUN_HANDOFF_STEPS, more=3)
    broker.wait_handoff_emails_settled(
        stack_env["REDIS_URL"], web.url, tokens["admin"], [unclaimed["id"], claimed["id"]]
    )
    assert mail_about(unclaimed["id"]) == expected
    # The claimed one had no step emails: its escalation emails, and the "claimed by" note
    # to the owner if the owner's escalation email went out before the claim was dispatched
    # (the claim follows the escalation by milliseconds here; either order is right).
    about_claimed = mail_about(claimed["id"])
    assert about_claimed - Counter({("handoff.claimed", "owner@steps.test"): 1}) == Counter(
        {("handoff.created", "owner@steps.test"): 1, ("handoff.created", "eng@steps.test"): 1}
    )

    rows = api("GET", f"/escalations/{unclaimed['id']}/deliveries", tokens["admin"]).json()
    emails = [row for row in rows["items"] if row["channel"] == "email"]
    assert len(emails) == 7 and {row["status"] for row in emails} == {"sent"}
    items = api("GET", f"/escalations/{unclaimed['id']}/timeline", tokens["eng"]).json()["items"]
    kinds = Counter(item["kind"] for item in items)
    assert (kinds["created"], kinds["reminded"], kinds["escalated_to_admins"]) == (1, 2, 1)
    got = api("GET", f"/escalations/{unclaimed['id']}", tokens["eng"]).json()
    assert got["reminders_sent"] == 2 and got["escalated_to_admins_at"] is not None

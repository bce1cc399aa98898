"""The test-only clock across the real processes: web, worker (dispatch and mailer queues)
and beat all follow one clock file (TEST_CLOCK_FILE, APP_ENV=test), so the test sets the
time for every process at once and counts the emails at the SMTP server.

The account is in America/Chicago, its owner's quiet hours are 22:00-07:00 there. At 23:30
Chicago the engineer is emailed at once and the owner's email is held (a `held` delivery);
when the clock file says 07:00 the mailer's sweep sends it. Instants written by hand:
Chicago is UTC-5 in July, UTC-6 in December.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from models.clock import set_test_clock
from tests.integration import broker
from tests.integration.services import create_account, wait_for
from workers.names import SWEEP_DELIVERIES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

SEASONS = {
    # 23:30 Chicago, and 07:00 the next morning
    "summer": (datetime(2026, 7, 16, 4, 30, tzinfo=UTC), datetime(2026, 7, 16, 12, 0, tzinfo=UTC)),
    "winter": (
        datetime(2026, 12, 10, 5, 30, tzinfo=UTC),
        datetime(2026, 12, 10, 13, 0, tzinfo=UTC),
    ),
}


@pytest.mark.parametrize("season", ["summer", "winter"])
def test_a_held_email_goes_out_when_every_process_sees_the_quiet_hours_end(
    stack_env, smtp_sink, web_server, celery_worker, celery_beat, tmp_path, season
):
    late, quiet_end = SEASONS[season]
    clock_file = tmp_path / "clock"
    set_test_clock(clock_file, late)
    stack_env.update({"APP_ENV": "test", "TEST_CLOCK_FILE": str(clock_file)})
    owner = create_account(stack_env, owner_email=f"owner@{season}.test")
    web = web_server()
    # DEBUG: the worker logs the routine ticks too, which the test counts.
    worker = celery_worker(extra_args=("--loglevel=DEBUG",))
    celery_beat()

    def api(method: str, path: str, token: str, **kwargs) -> requests.Response:
        response = requests.request(
            method,
            f"{web.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            **kwargs,
        )
        assert response.status_code < 300, response.text
        return response

    admin = owner["token"]
    api("PATCH", "/account", admin, json={
        "timezone": "America/Chicago", "renotify_after_minutes": None,
        "escalate_to_admins_after_minutes": None,
    })  # fmt: skip
    api("PATCH", "/me", admin, json={"quiet_hours": {"start": "22:00", "end": "07:00"}})
    tokens = {}
    for who, role in (("tech", "technician"), ("eng", "engineer")):
        body = {"name": who.title(), "email": f"{who}@{season}.test", "role": role}
        tokens[who] = api("POST", "/users", admin, json=body).json()["token"]
    session = api("POST", "/sessions", tokens["tech"], json={"title": "Door badge", "snapshot": {}})
    handoff = api(
        "POST", f"/sessions/{session.json()['id']}/escalate", tokens["tech"],
        json={"reason": "Locked out"},
    ).json()  # fmt: skip
    # The web process stamped the handoff with the test clock.
    created = datetime.fromisoformat(handoff["created_at"].replace("Z", "+00:00"))
    assert late <= created < late + timedelta(minutes=1)

    def recipients() -> list[str]:
        return sorted(m.rcpt_tos[0] for m in smtp_sink.messages)

    wait_for(lambda: recipients() == [f"eng@{season}.test"], timeout=30, interval=0.2)
    rows = api("GET", f"/escalations/{handoff['id']}/deliveries", admin).json()["items"]
    held = [row for row in rows if row["channel"] == "email" and row["status"] == "held"]
    assert [(r["recipient"]["email"], r["reason"]) for r in held] == [
        (f"owner@{season}.test", "business_hours")
    ]
    assert held[0]["held_until"] == quiet_end.strftime("%Y-%m-%dT%H:%M:%SZ")

    def settled() -> None:
        """Two more of the mailer's sweeps (each would send a held email that is due), and
        every send they started."""
        broker.wait_more_runs(worker, SWEEP_DELIVERIES, more=2)
        broker.wait_handoff_emails_settled(stack_env["REDIS_URL"], web.url, admin, [handoff["id"]])

    settled()  # still inside the quiet hours: nothing more
    assert recipients() == [f"eng@{season}.test"]

    set_test_clock(clock_file, quiet_end + timedelta(seconds=1))
    wait_for(
        lambda: recipients() == sorted([f"eng@{season}.test", f"owner@{season}.test"]),
        timeout=30,
        interval=0.2,
        message=f"the held email once the quiet hours ended (got {recipients()})",
    )
    settled()  # and only once
    assert len(smtp_sink.messages) == 2
    rows = api("GET", f"/escalations/{handoff['id']}/deliveries", admin).json()["items"]
    assert {row["status"] for row in rows if row["channel"] == "email"} == {"sent"}

"""The first action is credited to the senior who took it, in every figure, whoever holds
the handoff later (a reassignment after the first action does not move the credit).
Time is pinned with time-machine, at a winter and a summer date; the expected figures are
worked out by hand from the fixed timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from models import rollup
from tests.factories import both_databases

WINTER = datetime(2026, 1, 20, 9, 0, 0, tzinfo=UTC)
SUMMER = datetime(2026, 7, 14, 9, 0, 0, tzinfo=UTC)


def post(client, tenant, who: str, path: str, body: dict | None = None):
    response = client.post(f"/api/v1{path}", json=body or {}, headers=tenant.auth(who))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def escalate(client, tenant, title: str) -> dict:
    session = post(
        client, tenant, "tech", "/sessions", {"title": title, "snapshot": {}, "priority": "p2"}
    )
    return post(client, tenant, "tech", f"/sessions/{session['id']}/escalate", {"reason": "x"})


@both_databases
@pytest.mark.parametrize("t0", [WINTER, SUMMER], ids=["winter", "summer"])
def test_a_reassign_after_the_first_action_keeps_the_credit_with_who_acted(client, tenant, t0):
    """Erin (eng) claims at +30 s, chats at +45 s, reassigns to Sam (eng2) at +2 min; Sam
    chats at +3 min (not a first action: there already is one). A second handoff Sam claims
    at +10 min and acts on at +12 min (TTFA 720 s from its creation at +0)."""

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    with time_machine.travel(t0, tick=False) as clock:
        first = escalate(client, tenant, "Exchange mailbox won't sync")
        second = escalate(client, tenant, "Printer offline")
        clock.move_to(at(30))
        post(client, tenant, "eng", f"/escalations/{first['id']}/claim")
        clock.move_to(at(45))
        post(client, tenant, "eng", f"/sessions/{first['session_id']}/messages", {"body": "On it"})
        clock.move_to(at(120))
        post(
            client,
            tenant,
            "eng",
            f"/escalations/{first['id']}/reassign",
            {"user_id": tenant.users["eng2"], "reason": "Sam knows Exchange"},
        )
        clock.move_to(at(180))
        post(client, tenant, "eng2", f"/sessions/{first['session_id']}/messages", {"body": "Hi"})
        clock.move_to(at(600))
        post(client, tenant, "eng2", f"/escalations/{second['id']}/claim")
        clock.move_to(at(720))
        post(client, tenant, "eng2", f"/sessions/{second['session_id']}/messages", {"body": "Ok"})

    got = client.get(f"/api/v1/escalations/{first['id']}", headers=tenant.auth("eng")).get_json()
    assert got["claimed_by"]["id"] == tenant.users["eng2"]  # Sam holds it now ...
    assert got["time_to_first_action_seconds"] == 45.0  # ... Erin's message was the first
    assert got["first_action_by"]["id"] == tenant.users["eng"]

    month = rollup.Month(t0.year, t0.month)
    rollup.roll_up(months=[month], now=(t0 + timedelta(hours=1)).replace(tzinfo=None))
    metrics = client.get(
        f"/api/v1/analytics/escalation-metrics?month={month}", headers=tenant.auth("admin")
    ).get_json()
    assert metrics["first_actions"] == 2
    assert metrics["avg_time_to_first_action_minutes"] == round((45 + 720) / 2 / 60, 2)
    by_engineer = {e["id"]: e for e in metrics["engineers"]}
    assert set(by_engineer) == {tenant.users["eng"], tenant.users["eng2"]}
    erin, sam = by_engineer[tenant.users["eng"]], by_engineer[tenant.users["eng2"]]
    assert (erin["first_actions"], erin["median_time_to_first_action_minutes"]) == (1, 0.75)
    assert (sam["first_actions"], sam["median_time_to_first_action_minutes"]) == (1, 12.0)

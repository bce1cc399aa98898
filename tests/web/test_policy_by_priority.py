"""Per-priority unclaimed policy: `policy_by_priority` on GET/PATCH /account, its defaults
(p1 reminded after 2 minutes and at the admins after 5; p2 after 5 and 10; p3 and p4 the
account-wide values), its validation, and the steps the scheduler takes with it. Time is
pinned with time-machine at a winter and a summer date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from models import db
from models.entities import Handoff
from models.handoff_steps import run_due_steps
from tests.factories import both_databases
from tests.web.contract import assert_field_errors, database_snapshot

WINTER = datetime(2026, 1, 20, 9, 0, 0, tzinfo=UTC)
SUMMER = datetime(2026, 7, 14, 9, 0, 0, tzinfo=UTC)


def escalate(client, tenant, priority: str) -> dict:
    session = client.post(
        "/api/v1/sessions",
        json={"title": f"A {priority}", "snapshot": {}, "priority": priority},
        headers=tenant.auth("tech"),
    ).get_json()
    response = client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": "stuck"},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_get_account_carries_the_defaults(client, tenant):
    body = client.get("/api/v1/account", headers=tenant.auth("eng")).get_json()
    assert body["policy_by_priority"] == {
        "p1": {"renotify_after_minutes": 2, "escalate_to_admins_after_minutes": 5},
        "p2": {"renotify_after_minutes": 5, "escalate_to_admins_after_minutes": 10},
    }
    assert body["effective_policy_by_priority"]["p4"] == {
        "renotify_after_minutes": 5,
        "renotify_max": 2,
        "escalate_to_admins_after_minutes": 15,
    }
    assert body["effective_policy_by_priority"]["p1"]["renotify_max"] == 2


def test_patch_replaces_the_entries_and_null_restores_the_defaults(client, tenant):
    admin = tenant.auth("admin")
    wanted = {"p1": {"renotify_after_minutes": 1}, "p4": {"escalate_to_admins_after_minutes": None}}
    response = client.patch("/api/v1/account", json={"policy_by_priority": wanted}, headers=admin)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["policy_by_priority"] == wanted
    effective = body["effective_policy_by_priority"]
    assert effective["p1"] == {
        "renotify_after_minutes": 1,
        "renotify_max": 2,
        "escalate_to_admins_after_minutes": 15,  # left out: the account-wide value
    }
    assert effective["p2"]["renotify_after_minutes"] == 5  # no entry any more
    assert effective["p4"]["escalate_to_admins_after_minutes"] is None  # off for p4
    assert client.get("/api/v1/account", headers=admin).get_json()["policy_by_priority"] == wanted
    reset = client.patch("/api/v1/account", json={"policy_by_priority": None}, headers=admin)
    assert reset.get_json()["policy_by_priority"]["p1"]["renotify_after_minutes"] == 2


@pytest.mark.parametrize(
    "value, field",
    [
        ([], "policy_by_priority"),
        ({"p5": {}}, "policy_by_priority.p5"),
        ({"p1": 3}, "policy_by_priority.p1"),
        ({"p1": {"renotify_every": 3}}, "policy_by_priority.p1"),
        ({"p1": {"renotify_after_minutes": 0}}, "policy_by_priority.p1.renotify_after_minutes"),
        ({"p2": {"renotify_after_minutes": 241}}, "policy_by_priority.p2.renotify_after_minutes"),
        ({"p2": {"renotify_max": None}}, "policy_by_priority.p2.renotify_max"),
        ({"p3": {"renotify_max": 11}}, "policy_by_priority.p3.renotify_max"),
        (
            {"p1": {"escalate_to_admins_after_minutes": "5"}},
            "policy_by_priority.p1.escalate_to_admins_after_minutes",
        ),
        (
            {"p1": {"escalate_to_admins_after_minutes": True}},
            "policy_by_priority.p1.escalate_to_admins_after_minutes",
        ),
    ],
)
def test_a_bad_entry_is_422_and_changes_nothing(client, tenant, value, field):
    before = database_snapshot()
    response = client.patch(
        "/api/v1/account", json={"policy_by_priority": value}, headers=tenant.auth("admin")
    )
    assert_field_errors(response, field)
    assert database_snapshot() == before


@both_databases
@pytest.mark.parametrize("t0", [WINTER, SUMMER], ids=["winter", "summer"])
def test_a_p1_runs_its_own_clock_and_a_p3_the_account_wide_one(app, client, tenant, t0):
    def at(minutes: float) -> datetime:
        return (t0 + timedelta(minutes=minutes)).replace(tzinfo=None)

    with time_machine.travel(t0, tick=False):
        p1, p3 = escalate(client, tenant, "p1"), escalate(client, tenant, "p3")
    assert db.session.get(Handoff, p1["id"]).next_step_at == at(2)
    assert db.session.get(Handoff, p3["id"]).next_step_at == at(5)

    assert run_due_steps(now=at(2)).reminders == 1  # the p1 only
    assert run_due_steps(now=at(5)).admin_steps == 1  # the p1 reaches the admins at 5
    db.session.expire_all()
    first, third = db.session.get(Handoff, p1["id"]), db.session.get(Handoff, p3["id"])
    assert (first.reminders_sent, first.escalated_to_admins_at) == (2, at(5))
    assert (third.reminders_sent, third.escalated_to_admins_at) == (1, None)
    assert first.next_step_at is None  # 2 reminders and the admins: nothing left
    assert third.next_step_at == at(10)


def test_changing_the_p1_entry_reschedules_open_p1_handoffs(app, client, tenant):
    with time_machine.travel(WINTER, tick=False):
        p1 = escalate(client, tenant, "p1")
    client.patch(
        "/api/v1/account",
        json={"policy_by_priority": {"p1": {"renotify_after_minutes": None}}},
        headers=tenant.auth("admin"),
    )
    db.session.expire_all()
    # No reminders for p1 now; the admins at the account-wide 15 minutes.
    expected = (WINTER + timedelta(minutes=15)).replace(tzinfo=None)
    assert db.session.get(Handoff, p1["id"]).next_step_at == expected

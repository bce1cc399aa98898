"""The unclaimed-handoff steps on a pinned clock (time-machine): reminders at 5 and 10
minutes, the admins at 15, nothing after a claim, nothing twice. The ticks run the beat
task's domain call; the dispatch runs the fan-out in-process (fakeredis for the Socket.IO
message queue and presence, as in test_fanout.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from models import db, deliveries, handoff_steps
from models.entities import Delivery, HandoffStep, OutboxEvent
from tests.factories import both_databases, new_handoff
from tests.workers.test_fanout import (  # noqa: F401 - fixtures
    presence,
    queue_server,
    quick_retries,
    sent_tasks,
    web_node,
)
from workers import fanout, mail

T0 = datetime(2026, 3, 10, 9, 0, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def steps_of(handoff_id: int) -> list[str]:
    db.session.rollback()
    return list(
        db.session.scalars(
            select(HandoffStep.step)
            .where(HandoffStep.handoff_id == handoff_id)
            .order_by(HandoffStep.id)
        )
    )


def events_of(handoff_id: int, *kinds: str) -> list[OutboxEvent]:
    db.session.rollback()
    return list(
        db.session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.handoff_id == handoff_id, OutboxEvent.event.in_(kinds))
            .order_by(OutboxEvent.id)
        )
    )


def tick() -> handoff_steps.StepsTaken:
    return handoff_steps.run_due_steps()


@both_databases
def test_reminders_at_5_and_10_then_the_admins_at_15_each_once(client, tenant):
    with time_machine.travel(T0, tick=False) as clock:
        hid = new_handoff(client, tenant)["id"]
        for minute, expected in [
            (4.99, []),
            (5, ["reminder-1"]),
            (5, ["reminder-1"]),  # a duplicate tick
            (9.99, ["reminder-1"]),
            (10, ["reminder-1", "reminder-2"]),
            (14.99, ["reminder-1", "reminder-2"]),
            (15, ["reminder-1", "reminder-2", "admins"]),
            (15, ["reminder-1", "reminder-2", "admins"]),
            (600, ["reminder-1", "reminder-2", "admins"]),  # renotify_max is 2
        ]:
            clock.move_to(at(minute))
            tick()
            assert steps_of(hid) == expected, minute
    assert len(events_of(hid, "handoff.reminder")) == 2
    assert len(events_of(hid, "handoff.unclaimed")) == 1
    reminded = client.get(f"/api/v1/escalations/{hid}", headers=tenant.auth("eng")).get_json()
    assert reminded["reminders_sent"] == 2
    assert reminded["escalated_to_admins_at"] == "2026-03-10T09:15:00Z"


@both_databases
def test_nothing_after_a_claim_at_minute_7(client, tenant):
    with time_machine.travel(T0, tick=False) as clock:
        hid = new_handoff(client, tenant)["id"]
        clock.move_to(at(5))
        tick()
        clock.move_to(at(7))
        client.post(f"/api/v1/escalations/{hid}/claim", headers=tenant.auth("eng"))
        for minute in (10, 15, 60):
            clock.move_to(at(minute))
            tick()
    assert steps_of(hid) == ["reminder-1"]


def test_a_release_resumes_the_clock_from_creation(app, client, tenant):
    """Claimed at 2, released at 12: reminders 1 and 2 are both overdue, so one reminder
    (numbered 2) goes at once; the admins at 15 as usual."""
    with time_machine.travel(T0, tick=False) as clock:
        hid = new_handoff(client, tenant)["id"]
        clock.move_to(at(2))
        client.post(f"/api/v1/escalations/{hid}/claim", headers=tenant.auth("eng"))
        clock.move_to(at(12))
        client.post(
            f"/api/v1/escalations/{hid}/release", json={"reason": "x"}, headers=tenant.auth("eng")
        )
        tick()
        assert steps_of(hid) == ["reminder-2"]
        clock.move_to(at(15))
        tick()
    assert steps_of(hid) == ["reminder-2", "admins"]


def test_a_policy_with_steps_off_takes_none(app, client, tenant):
    client.patch(
        "/api/v1/account",
        json={"renotify_after_minutes": None, "escalate_to_admins_after_minutes": None},
        headers=tenant.auth("admin"),
    )
    with time_machine.travel(T0, tick=False) as clock:
        hid = new_handoff(client, tenant)["id"]
        clock.move_to(at(24 * 60))
        tick()
    assert steps_of(hid) == []


@both_databases
def test_a_second_beat_that_read_the_same_state_changes_nothing(client, tenant):
    """Two beats (or a duplicate task) both read the handoff due: the conditional UPDATE
    advances it for one; the other, planning from the same stale read, advances nothing
    (and so records no step), however the two interleave."""
    from models.db import transaction

    with time_machine.travel(T0, tick=False) as clock:
        hid = new_handoff(client, tenant)["id"]
        clock.move_to(at(5))
        now = at(5).replace(tzinfo=None)
        ((handoff, policy),) = handoff_steps._load([hid])
        plans = [handoff_steps._plan(handoff, policy, now)]  # both beats read this state
        with transaction():
            first = handoff_steps._advance(plans, now)
        with transaction():
            second = handoff_steps._advance(plans, now)
        assert (first, second) == ({hid}, set())
        # A claim that committed first leaves the step out the same way.
        client.post(f"/api/v1/escalations/{hid}/claim", headers=tenant.auth("eng"))
        clock.move_to(at(10))
        ((handoff, policy),) = handoff_steps._load([hid])
        assert handoff.status == "claimed"
        stale = [handoff_steps.StepPlan(handoff, policy, 1, False, 2, False, None)]
        with transaction():
            assert handoff_steps._advance(stale, at(10).replace(tzinfo=None)) == set()


def deliveries_of(handoff_id: int, event: str) -> list[Delivery]:
    db.session.rollback()
    return list(
        db.session.scalars(
            select(Delivery)
            .where(Delivery.handoff_id == handoff_id, Delivery.event == event)
            .order_by(Delivery.id)
        )
    )


def test_step_emails_go_to_offline_seniors_then_to_every_admin(
    app,
    client,
    tenant,
    presence,  # noqa: F811
    web_node,  # noqa: F811
    sent_tasks,  # noqa: F811
):
    presence.connected(tenant.users["eng2"], "tab-1")  # eng2 is online
    presence.connected(tenant.users["admin"], "tab-2")  # so is the admin
    with time_machine.travel(T0, tick=False) as clock:
        hid = new_handoff(client, tenant)["id"]
        for minute in (5, 10, 15):
            clock.move_to(at(minute))
            tick()
    reminder, _, unclaimed = events_of(hid, "handoff.reminder", "handoff.unclaimed")
    for _ in range(2):  # a relayed duplicate of each dispatch changes nothing
        fanout.dispatch(reminder.id)
        fanout.dispatch(unclaimed.id)
    emitted = [m["event"] for m in web_node.messages()]
    assert emitted == ["handoff.reminder", "handoff.unclaimed"]

    reminder_mail = [d for d in deliveries_of(hid, "handoff.reminder") if d.channel == "email"]
    assert {d.dedupe_key for d in reminder_mail} == {
        f"email:{hid}:reminder-1:{tenant.users['eng']}"
    }  # eng is the only senior offline: the admin and eng2 are connected
    admin_mail = [d for d in deliveries_of(hid, "handoff.unclaimed") if d.channel == "email"]
    assert {d.dedupe_key for d in admin_mail} == {f"email:{hid}:admins:{tenant.users['admin']}"}
    sends = [i for name, args in sent_tasks if name == "workers.email.send_emails" for i in args[0]]
    assert sorted(sends) == sorted(d.id for d in reminder_mail + admin_mail)


def test_a_step_that_races_a_claim_sends_nothing_after_the_claim(
    app,
    client,
    tenant,
    presence,  # noqa: F811
    web_node,  # noqa: F811
    sent_tasks,  # noqa: F811
):
    """The step committed, then a claim committed before the worker got to it: the worker
    re-checks before emitting and before each email, and records why it sent nothing."""
    with time_machine.travel(T0, tick=False) as clock:
        hid = new_handoff(client, tenant)["id"]
        clock.move_to(at(5))
        tick()
        (reminder,) = events_of(hid, "handoff.reminder")
        # The email delivery was made by an earlier dispatch attempt, before the claim.
        deliveries_row = deliveries.email_deliveries(reminder, [tenant.users["eng"]], "reminder-1")[
            0
        ]
        clock.move_to(at(6))
        client.post(f"/api/v1/escalations/{hid}/claim", headers=tenant.auth("eng2"))
        assert fanout.dispatch(reminder.id) == "failed"
        settings = mail.EmailSettings.from_config(app.config)
        assert mail.attempt_delivery(deliveries_row.id, settings).status == "failed"
    assert web_node.messages() == []
    rows = deliveries_of(hid, "handoff.reminder")
    assert sorted((d.channel, d.status) for d in rows) == [
        ("email", "failed"),
        ("socket", "failed"),
    ]
    assert all(d.last_error.startswith("Not sent: the escalation was claimed") for d in rows)


@pytest.mark.parametrize("count", [100])
def test_the_scan_takes_at_most_its_limit_and_the_rest_next_tick(app, client, tenant, count):
    from models.entities import FlowSession, Handoff, User

    tech = db.session.get(User, tenant.users["tech"])
    created = at(-60).replace(tzinfo=None)
    sessions = [
        FlowSession(
            account_id=tenant.account_id,
            technician_id=tech.id,
            title="s",
            snapshot={},
            ai_assessment={},
        )
        for _ in range(count)
    ]
    db.session.add_all(sessions)
    db.session.flush()
    db.session.add_all(
        Handoff(
            account_id=tenant.account_id,
            session_id=s.id,
            escalated_by_id=tech.id,
            title="s",
            reason="r",
            escalation_package={},
            created_at=created,
            next_step_at=created + timedelta(minutes=5),
        )
        for s in sessions
    )
    db.session.commit()
    with time_machine.travel(T0, tick=False):
        first = handoff_steps.run_due_steps(limit=60)
        second = handoff_steps.run_due_steps(limit=60)
        third = handoff_steps.run_due_steps(limit=60)
    # An hour overdue: one reminder (numbered 2) and the admin step each, in two ticks.
    assert (first.reminders, second.reminders, third.reminders) == (60, 40, 0)
    assert first.admin_steps + second.admin_steps == count
    total = db.session.scalar(select(func.count()).select_from(HandoffStep))
    assert total == 2 * count

"""The demo history `make run` seeds: months of escalations with first actions, a couple
open now, rolled up; written once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from models import db
from models.demo import HISTORY_MONTHS, OPEN_NOW, seed_history
from models.entities import Account, Handoff, MonthlyRollup
from tests.factories import make_tenant

NOW = datetime(2026, 12, 1, 22, 0)


def test_demo_history_fills_past_months_and_the_queue_once(app):
    tenant = make_tenant("Demo MSP")
    account = db.session.get(Account, tenant.account_id)
    seeded = seed_history(account, now=NOW)
    assert seeded.months == ("2026-12", "2026-11", "2026-10", "2026-09")
    handoffs = list(db.session.scalars(select(Handoff)))
    assert len(handoffs) == seeded.handoffs
    assert sum(h.status == "open" for h in handoffs) == OPEN_NOW
    acted = [h for h in handoffs if h.first_action_at is not None]
    assert all(h.created_at < h.claimed_at <= h.first_action_at < NOW for h in acted)
    assert all(
        h.time_to_first_action_seconds == (h.first_action_at - h.created_at).total_seconds()
        for h in acted
    )
    acted_months = {h.first_action_at.strftime("%Y-%m") for h in acted}
    assert len(acted_months) >= HISTORY_MONTHS
    rolled = {
        row.month: row.first_actions
        for row in db.session.scalars(
            select(MonthlyRollup).where(MonthlyRollup.account_id == account.id)
        )
    }
    for month in seeded.months[1:]:
        assert rolled[month] == sum(h.first_action_at.strftime("%Y-%m") == month for h in acted)

    assert seed_history(account, now=NOW).handoffs == 0  # a second run adds nothing
    assert db.session.scalar(select(func.count(Handoff.id))) == seeded.handoffs


def test_the_open_demo_escalations_run_the_policy_of_their_priority(app):
    """The p1 waited 1 minute: reminded at 2, the admins at 5; the p2 waited 3: reminded at
    5 (the default per-priority policy). Each first step is a minute or two away."""
    from datetime import timedelta

    from models.entities import FlowSession
    from models.handoff_steps import run_due_steps

    tenant = make_tenant("Demo MSP")
    account = db.session.get(Account, tenant.account_id)
    seed_history(account, now=NOW)
    opened = db.session.execute(
        select(FlowSession.priority, Handoff.created_at, Handoff.next_step_at)
        .join(FlowSession, FlowSession.id == Handoff.session_id)
        .where(Handoff.status == "open")
        .order_by(FlowSession.priority)
    ).all()
    minutes = timedelta(minutes=1)
    assert [(p, c, n) for p, c, n in opened] == [
        ("p1", NOW - 1 * minutes, NOW + 1 * minutes),
        ("p2", NOW - 3 * minutes, NOW + 2 * minutes),
    ]
    assert run_due_steps(now=NOW + 1 * minutes).reminders == 1
    assert run_due_steps(now=NOW + 4 * minutes).admin_steps == 1

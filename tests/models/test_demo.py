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

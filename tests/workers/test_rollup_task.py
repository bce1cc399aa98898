"""The scheduled rollup task: wired to beat, and what it writes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models import MonthlyRollup, db, tenancy
from models.entities import Account
from models.rollup import current_month
from tests.factories import make_tenant, with_three_roles
from workers import names
from workers import settings as celery_config
from workers.rollup import rollup_metrics


def test_beat_sends_the_task_often_enough_for_60_seconds(app):
    celery = app.extensions["celery"]
    assert rollup_metrics.name == names.ROLLUP_METRICS
    task = celery.tasks[names.ROLLUP_METRICS]
    entries = [e for e in celery.conf.beat_schedule.values() if e["task"] == names.ROLLUP_METRICS]
    assert len(entries) == 1
    # A first action waits at most one interval for the next run, plus the run itself.
    assert entries[0]["schedule"] <= timedelta(seconds=30)
    route = celery.conf.task_routes[names.ROLLUP_METRICS]
    assert route == {"queue": names.QUEUE_MAINTENANCE}
    assert "workers.rollup" in celery_config.settings(app.config)["include"]
    # A tick that waited a whole interval is dropped: the next one does the same work.
    assert task.expires == 30


@with_three_roles
def test_the_task_rolls_up_every_account(app):
    """With row security enforced too: the task is system work, so it sees every account."""
    tenants = [make_tenant("Alpha MSP"), make_tenant("Tokyo MSP", "Asia/Tokyo")]
    result = rollup_metrics.apply().get()
    assert result["accounts"] == 2
    for tenant in tenants:
        with tenancy.use_tenant(tenant.account_id):
            account = db.session.get(Account, tenant.account_id)
            months = db.session.scalars(select(MonthlyRollup.month)).all()
            # The current month in the account's zone (and the previous one early in a month).
            assert str(current_month(account)) in months
            db.session.rollback()
    # Running it again writes the same rows again, no more.
    assert rollup_metrics.apply().get()["rows"] == result["rows"]
    with tenancy.system("rollup"):
        count = len(db.session.scalars(select(MonthlyRollup.month)).all())
    assert count == result["rows"]

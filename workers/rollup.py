"""The scheduled monthly rollup (beat sends it every 30 s; see workers.settings.BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from models import rollup
from workers import names

# A tick the worker could not start within one schedule interval is dropped: the next
# tick recomputes the same months, so queued duplicates would only be wasted work.
EXPIRES_SECONDS = 30


@shared_task(name=names.ROLLUP_METRICS, ignore_result=True, expires=EXPIRES_SECONDS)
def rollup_metrics() -> dict:
    """Recompute every account's current month (and the previous one early in a month)."""
    run = rollup.roll_up()
    return {"rows": run.rows, "accounts": run.accounts, "seconds": round(run.seconds, 3)}

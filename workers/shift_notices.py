"""Shift notices (beat, every minute): one email to each senior whose final segment of a
shift has begun, once per segment. The rule lives in models/shift_notices.py."""

from __future__ import annotations

import logging

from celery import shared_task

from models import shift_notices
from workers import names
from workers.mail import enqueue_per_account

log = logging.getLogger(__name__)

# A tick the worker could not start within one interval is dropped: the next does the same.
EXPIRES_SECONDS = 60
# Emails per send task.
PER_TASK = 50


@shared_task(name=names.SHIFT_NOTICES, ignore_result=True, expires=EXPIRES_SECONDS)
def send_shift_notices() -> int:
    """Create the notices of the segments that began, and hand them to the mailer (one task
    per PER_TASK emails); a task the broker refused leaves its rows to the sweeper."""
    created = shift_notices.run_tick()
    try:
        enqueue_per_account(created, PER_TASK)
    except Exception:
        log.warning("Broker unreachable; the sweeper sends the shift notices", exc_info=True)
    if created:
        log.info("Shift notices: %d", len(created))
    return len(created)

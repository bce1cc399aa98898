"""Unclaimed handoffs (beat, every 15 s): take the reminder and admin steps that are due,
and the emails those steps (and reassignments) send. The rules live in
models/handoff_steps.py (when) and models/rooms.py (who)."""

from __future__ import annotations

import logging

from celery import shared_task

from models import handoff_steps
from workers import names

log = logging.getLogger(__name__)

# A tick the worker could not start within one interval is dropped: the next does the same.
EXPIRES_SECONDS = 15


@shared_task(name=names.RUN_HANDOFF_STEPS, ignore_result=True, expires=EXPIRES_SECONDS)
def run_handoff_steps() -> dict[str, int]:
    """Take the due steps (beat, every 15 s)."""
    # Each step's outbox event goes out with its commit (workers.publish); the relay sends
    # any the broker refused.
    taken = handoff_steps.run_due_steps()
    if taken.reminders or taken.admin_steps:
        log.info(
            "Unclaimed handoffs: %d reminders, %d admin steps", taken.reminders, taken.admin_steps
        )
    return {"reminders": taken.reminders, "admin_steps": taken.admin_steps}

"""Unclaimed handoffs (beat, every 15 s): take the reminder and admin steps that are due,
and the emails those steps (and reassignments) send. The rules live in
models/handoff_steps.py (when) and models/rooms.py (who)."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app

from models import deliveries, handoff_steps
from models.entities import Handoff, OutboxEvent
from models.outbox import HANDOFF_REASSIGNED
from models.presence import current_presence
from models.rooms import step_email_audience
from workers import names
from workers.publish import publish_outbox_events

log = logging.getLogger(__name__)

# A tick the worker could not start within one interval is dropped: the next does the same.
EXPIRES_SECONDS = 15


@shared_task(name=names.RUN_HANDOFF_STEPS, ignore_result=True, expires=EXPIRES_SECONDS)
def run_handoff_steps() -> dict[str, int]:
    """Take the due steps, then hand their outbox events to the broker (the relay sends
    any the broker refused)."""
    taken = handoff_steps.run_due_steps()
    if taken.outbox_event_ids:
        publish_outbox_events(taken.outbox_event_ids)
        log.info(
            "Unclaimed handoffs: %d reminders, %d admin steps", taken.reminders, taken.admin_steps
        )
    return {"reminders": taken.reminders, "admin_steps": taken.admin_steps}


def email_label(event: OutboxEvent) -> str | None:
    """What makes this event's emails unique per handoff and recipient."""
    if event.event == HANDOFF_REASSIGNED:
        return f"reassigned-{event.id}"
    return handoff_steps.step_of_event(event.id)


def email_step_recipients(event: OutboxEvent, handoff: Handoff) -> list[int]:
    """The emails of a step or a reassignment: a delivery per recipient (created once,
    whatever how often this runs) and a send task for each not yet attempted."""
    audience = step_email_audience(event.event, handoff)
    label = email_label(event)
    if audience is None or label is None:
        return []
    recipients = audience.user_ids
    if audience.offline_only:
        recipients = current_presence().offline(recipients)
    rows = deliveries.labelled_email_deliveries(event, label, recipients)
    celery = current_app.extensions["celery"]
    enqueued = []
    for row in rows:
        if row.status == "pending" and row.attempts == 0:
            celery.send_task(names.SEND_EMAIL, args=[row.id])
            enqueued.append(row.id)
    return enqueued

"""Handing committed outbox events to the broker, from the web process or the relay."""

from __future__ import annotations

import logging

from flask import current_app

from models import outbox
from workers.names import DISPATCH_OUTBOX_EVENT

log = logging.getLogger(__name__)


def publish_outbox_events(outbox_event_ids: list[int]) -> list[int]:
    """Send one dispatch task per event; return the ids the broker accepted.

    Bounded in time by the publish retry policy and socket timeouts in celery_config;
    any broker error is logged, never raised: the outbox relay sends those later.
    """
    celery = current_app.extensions["celery"]
    published: list[int] = []
    for outbox_event_id in outbox_event_ids:
        try:
            celery.send_task(DISPATCH_OUTBOX_EVENT, args=[outbox_event_id])
        except Exception:  # kombu OperationalError, socket errors, timeouts
            log.warning(
                "Broker unreachable; outbox event %s waits for the relay",
                outbox_event_id,
                exc_info=True,
            )
            break
        published.append(outbox_event_id)
    try:
        outbox.mark_published(published)
    except Exception:
        # The tasks went out; at worst the relay sends them again, which is harmless.
        log.warning("Could not mark outbox events %s published", published, exc_info=True)
    return published


def publish_announced() -> None:
    """After a command committed: publish the outbox events it announced."""
    if ids := outbox.take_announced():
        publish_outbox_events(ids)

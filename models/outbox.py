"""The transactional outbox: notification work committed with the change it announces."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect, select, update

from models.db import db, utcnow
from models.entities import Handoff, OutboxEvent

HANDOFF_CREATED = "handoff.created"
HANDOFF_CLAIMED = "handoff.claimed"
HANDOFF_RESOLVED = "handoff.resolved"
HANDOFF_REMINDER = "handoff.reminder"
HANDOFF_UNCLAIMED = "handoff.unclaimed"
HANDOFF_RELEASED = "handoff.released"
HANDOFF_REASSIGNED = "handoff.reassigned"
HANDOFF_EVENTS = (
    HANDOFF_CREATED,
    HANDOFF_CLAIMED,
    HANDOFF_RESOLVED,
    HANDOFF_REMINDER,
    HANDOFF_UNCLAIMED,
    HANDOFF_RELEASED,
    HANDOFF_REASSIGNED,
)
# The unclaimed steps: worth sending only while the handoff is still open.
STEP_EVENTS = (HANDOFF_REMINDER, HANDOFF_UNCLAIMED)

_ANNOUNCED = "announced_outbox_events"


def announce(handoff: Handoff, event: str) -> OutboxEvent:
    """Add an outbox row in the caller's transaction and remember it for publishing after commit.

    Written with the commit's flush, together with the handoff (which may be new too)."""
    outbox_event = OutboxEvent(account_id=handoff.account_id, handoff=handoff, event=event)
    db.session.add(outbox_event)
    db.session.info.setdefault(_ANNOUNCED, []).append(outbox_event)
    return outbox_event


def take_announced() -> list[int]:
    """Ids of the outbox rows announced since the last call (committed by now)."""
    announced = db.session.info.pop(_ANNOUNCED, [])
    # The identity holds the id even once the commit expired the object: no reload.
    return [inspect(outbox_event).identity[0] for outbox_event in announced]


def forget_announced() -> None:
    db.session.info.pop(_ANNOUNCED, None)


def mark_published(outbox_event_ids: list[int]) -> None:
    if not outbox_event_ids:
        return
    db.session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(outbox_event_ids), OutboxEvent.published_at.is_(None))
        .values(published_at=utcnow())
    )
    db.session.commit()


def note_republished(outbox_event_ids: list[int]) -> None:
    """The relay sent these again: count from now, so the next tick gives the new task its
    grace period instead of piling duplicates onto a busy queue."""
    if not outbox_event_ids:
        return
    db.session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(outbox_event_ids))
        .values(published_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def unpublished(older_than: timedelta, limit: int = 500) -> list[int]:
    """Outbox rows that nobody published: the broker was unreachable after their commit."""
    cutoff = utcnow() - older_than
    return list(
        db.session.scalars(
            select(OutboxEvent.id)
            .where(OutboxEvent.published_at.is_(None), OutboxEvent.created_at <= cutoff)
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
    )

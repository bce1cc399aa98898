"""A handoff's timeline: what happened to it, who did it and when.

Each change writes its `HandoffEvent` row in the change's own transaction (`record`), so
the timeline never shows a change that rolled back nor misses one that committed. The
notifications come from the deliveries table as they stand, so each shows its final state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from models.db import db, utcnow
from models.entities import Delivery, Handoff, HandoffEvent, User

CREATED = "created"
NOTIFIED = "notified"
REMINDED = "reminded"
ESCALATED_TO_ADMINS = "escalated_to_admins"
CLAIMED = "claimed"
RELEASED = "released"
REASSIGNED = "reassigned"
FIRST_ACTION = "first_action"
RESOLVED = "resolved"
KINDS = (
    CREATED,
    NOTIFIED,
    REMINDED,
    ESCALATED_TO_ADMINS,
    CLAIMED,
    RELEASED,
    REASSIGNED,
    FIRST_ACTION,
    RESOLVED,
)


def ref(user: User | None) -> dict[str, Any] | None:
    return {"id": user.id, "name": user.name} if user is not None else None


def record(
    handoff: Handoff,
    kind: str,
    actor: User | None = None,
    at: datetime | None = None,
    **details: Any,
) -> HandoffEvent:
    """Add a timeline row in the caller's transaction (the caller commits)."""
    if kind not in KINDS:
        raise ValueError(f"Not a timeline kind: {kind!r}")
    row = HandoffEvent(
        account_id=handoff.account_id,
        handoff=handoff,
        kind=kind,
        actor_id=actor.id if actor is not None else None,
        at=at or utcnow(),
        details=details,
    )
    db.session.add(row)
    return row


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str
    actor: dict[str, Any] | None
    details: dict[str, Any] = field(default_factory=dict)


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def _notification(delivery: Delivery) -> TimelineItem:
    recipient = delivery.recipient
    return TimelineItem(
        at=delivery.sent_at or delivery.created_at,
        kind=NOTIFIED,
        actor=None,
        details={
            "channel": delivery.channel,
            "event": delivery.event,
            "recipient": (
                {"id": recipient.id, "name": recipient.name, "email": recipient.email}
                if recipient is not None
                else None
            ),
            "status": delivery.status,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            # Email only: why it went (`nobody_on_call`: nobody was on call outside
            # business hours, so the admins were told), and until when quiet hours hold it.
            "reason": delivery.reason,
            "held_until": _iso(delivery.held_until),
        },
    )


def timeline_of(handoff: Handoff) -> list[TimelineItem]:
    """Every recorded change and every notification of the handoff, oldest first."""
    changes = [
        TimelineItem(row.at, row.kind, ref(row.actor), dict(row.details or {}))
        for row in db.session.scalars(
            select(HandoffEvent)
            .where(HandoffEvent.handoff_id == handoff.id)
            .order_by(HandoffEvent.id)
        )
    ]
    notifications = [
        _notification(row)
        for row in db.session.scalars(
            select(Delivery).where(Delivery.handoff_id == handoff.id).order_by(Delivery.id)
        )
    ]
    # A stable sort: changes keep their commit order when two share a timestamp.
    return sorted(changes + notifications, key=lambda item: item.at)


def last_change(handoff_id: int, kind: str) -> HandoffEvent | None:
    """The handoff's latest recorded change of `kind` (for example the reassignment an
    email announces: who handed it on, and why)."""
    return db.session.scalar(
        select(HandoffEvent)
        .where(HandoffEvent.handoff_id == handoff_id, HandoffEvent.kind == kind)
        .order_by(HandoffEvent.id.desc())
        .limit(1)
    )

"""Notification deliveries: one row per (handoff event, channel, recipient), each sent at most once.

A sender claims a row (a conditional UPDATE that sets a short lease) before sending, so two
workers never send the same delivery; a row whose lease ran out (its worker died) becomes
due again and the sweeper re-enqueues it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from models.db import db, utcnow
from models.entities import SENIOR_ROLES, Delivery, OutboxEvent, User

SOCKET = "socket"
EMAIL = "email"

LEASE = timedelta(seconds=60)
# Transient failures retry with exponential backoff and jitter for at least this long.
RETRY_WINDOW = timedelta(hours=24)
FIRST_RETRY_SECONDS = 15.0
MAX_BACKOFF_SECONDS = 600.0


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried; the defaults meet the contract (first retry
    within 30 s, capped at 10 minutes, for at least 24 hours). Tests shorten them."""

    first_retry_seconds: float = FIRST_RETRY_SECONDS
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    window: timedelta = RETRY_WINDOW


DEFAULT_RETRY = RetryPolicy()


def seniors(account_id: int) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .where(
                User.account_id == account_id,
                User.role.in_(SENIOR_ROLES),
                User.active.is_(True),
            )
            .order_by(User.id)
        )
    )


def senior_ids(account_id: int) -> list[int]:
    """The ids of the account's engineers and admins (ids only: no user objects to build)."""
    return list(
        db.session.scalars(
            select(User.id)
            .where(
                User.account_id == account_id,
                User.role.in_(SENIOR_ROLES),
                User.active.is_(True),
            )
            .order_by(User.id)
        )
    )


def _get_or_create(dedupe_key: str, **values) -> Delivery:
    existing = db.session.scalar(select(Delivery).where(Delivery.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    delivery = Delivery(dedupe_key=dedupe_key, **values)
    try:
        with db.session.begin_nested():
            db.session.add(delivery)
    except IntegrityError:  # a concurrent dispatch created it first
        return db.session.scalar(select(Delivery).where(Delivery.dedupe_key == dedupe_key))
    return delivery


def _for_event(
    event: OutboxEvent, channel: str, dedupe_key: str, recipient_id: int | None
) -> Delivery:
    return _get_or_create(
        dedupe_key,
        account_id=event.account_id,
        handoff_id=event.handoff_id,
        outbox_event_id=event.id,
        channel=channel,
        event=event.event,
        recipient_id=recipient_id,
    )


def socket_delivery(event: OutboxEvent) -> Delivery:
    """The room broadcast for one outbox event (recipient: the room, so none)."""
    delivery = _for_event(event, SOCKET, f"socket:{event.id}", None)
    db.session.commit()
    return delivery


def email_deliveries(event: OutboxEvent, recipient_ids: list[int]) -> list[Delivery]:
    """One email per (handoff, recipient), however often the event is dispatched."""
    deliveries = [
        _for_event(event, EMAIL, f"email:{event.handoff_id}:{recipient_id}", recipient_id)
        for recipient_id in recipient_ids
    ]
    db.session.commit()
    return deliveries


def _claimable(now: datetime):
    return and_(
        Delivery.status.in_(("pending", "retrying")),
        or_(Delivery.locked_until.is_(None), Delivery.locked_until < now),
    )


def claim(delivery_id: int, lease: timedelta = LEASE) -> Delivery | None:
    """Take the delivery for one send attempt, or None if it is done or someone else holds it."""
    now = utcnow()
    claimed = db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, _claimable(now))
        .values(locked_until=now + lease, attempts=Delivery.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return db.session.get(Delivery, delivery_id) if claimed else None


def mark_sent(delivery: Delivery) -> None:
    delivery.status, delivery.sent_at = "sent", utcnow()
    delivery.locked_until, delivery.next_attempt_at, delivery.last_error = None, None, None
    db.session.commit()


def mark_failed(delivery: Delivery, error: str) -> None:
    """A permanent failure, or the retry window ran out: visible, never silent."""
    delivery.status, delivery.last_error = "failed", error[:2000]
    delivery.locked_until, delivery.next_attempt_at = None, None
    db.session.commit()


def backoff_seconds(
    attempts: int, rng: random.Random | None = None, policy: RetryPolicy = DEFAULT_RETRY
) -> float:
    """Exponential backoff with jitter: ~15 s after the first failure (always under 30 s),
    doubling, capped at 10 minutes."""
    exponent = min(max(attempts - 1, 0), 32)  # 2**32 * 15 s is far past any cap
    ceiling = min(policy.max_backoff_seconds, policy.first_retry_seconds * 2**exponent)
    return (rng or random).uniform(ceiling / 2, ceiling)


def mark_retrying(
    delivery: Delivery, error: str, policy: RetryPolicy = DEFAULT_RETRY
) -> float | None:
    """Schedule the next attempt and return its delay, or fail the delivery (returning None)
    once the retry window has passed."""
    if utcnow() - delivery.created_at >= policy.window:
        mark_failed(delivery, f"Gave up after {delivery.attempts} attempts: {error}")
        return None
    delay = backoff_seconds(delivery.attempts, policy=policy)
    delivery.status, delivery.last_error = "retrying", error[:2000]
    delivery.next_attempt_at = utcnow() + timedelta(seconds=delay)
    delivery.locked_until = delivery.next_attempt_at  # nobody may take it before it is due
    db.session.commit()
    return delay


def due(grace: timedelta, limit: int = 500, channel: str | None = None) -> list[Delivery]:
    """Deliveries nobody is working on although they should be: their task was lost (a worker
    killed mid-task, a broker restart). `grace` leaves queued tasks time to run first."""
    now = utcnow()
    cutoff = now - grace
    query = select(Delivery).where(
        _claimable(now),
        or_(
            and_(Delivery.next_attempt_at.is_(None), Delivery.created_at < cutoff),
            Delivery.next_attempt_at < cutoff,
        ),
    )
    if channel is not None:
        query = query.where(Delivery.channel == channel)
    return list(db.session.scalars(query.order_by(Delivery.id).limit(limit)))


def undispatched_events(grace: timedelta, window: timedelta, limit: int = 500) -> list[int]:
    """Outbox events handed to the broker between `window` and `grace` ago whose dispatch
    never started (no socket delivery row: a dispatch creates it first). Their task was lost:
    taken by a worker killed before it began (with late acks Redis gives it back only after
    the visibility timeout) or dropped by a Redis that restarted empty."""
    now = utcnow()
    started = (
        select(Delivery.id)
        .where(
            Delivery.handoff_id == OutboxEvent.handoff_id,
            Delivery.outbox_event_id == OutboxEvent.id,
            Delivery.channel == SOCKET,
        )
        .exists()
    )
    return list(
        db.session.scalars(
            select(OutboxEvent.id)
            .where(
                OutboxEvent.published_at > now - window,
                OutboxEvent.published_at <= now - grace,
                ~started,
            )
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
    )


def note_requeued(delivery_ids: list[int]) -> None:
    """The sweeper sent these again: expect them from now on, so the next sweep leaves them
    alone for another grace period instead of piling duplicates onto a busy queue."""
    if not delivery_ids:
        return
    db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.status.in_(("pending", "retrying")))
        .values(next_attempt_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()

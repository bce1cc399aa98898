"""Notification deliveries: one row per (handoff event, channel, recipient), each sent at most once.

A sender claims a row (a conditional UPDATE that sets a short lease) before sending, so two
workers never send the same delivery; a row whose lease ran out (its worker died) becomes
due again and the sweeper re-enqueues it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, and_, cast, literal, or_, select, update

from models.db import commit_keeping_loaded, db, insert_on_conflict, transaction, utcnow
from models.entities import Delivery, OutboxEvent, User
from models.events import HANDOFF_CREATED, HANDOFF_REMINDER, HANDOFF_UNCLAIMED, PSA_WRITEBACK
from models.notification_rule import BUSINESS_HOURS, Chosen, delivery_key

SOCKET = "socket"
EMAIL = "email"
PSA = "psa"
# A socket delivery's key: one per outbox event.
SOCKET_KEY_PREFIX = "socket:"

#: The one definition of the email retry settings' defaults; web.config reads these for
#: the environment variables of the same names. They meet the contract: first retry within
#: 30 s, backoff capped at 10 minutes, retried for at least 24 hours.
EMAIL_DEFAULTS = {
    "EMAIL_FIRST_RETRY_SECONDS": 15.0,
    "EMAIL_MAX_BACKOFF_SECONDS": 600.0,
    "EMAIL_RETRY_WINDOW_SECONDS": 86400.0,
}
# Transient failures retry with exponential backoff and jitter for at least this long.
RETRY_WINDOW = timedelta(seconds=EMAIL_DEFAULTS["EMAIL_RETRY_WINDOW_SECONDS"])
FIRST_RETRY_SECONDS = EMAIL_DEFAULTS["EMAIL_FIRST_RETRY_SECONDS"]
MAX_BACKOFF_SECONDS = EMAIL_DEFAULTS["EMAIL_MAX_BACKOFF_SECONDS"]

_finished_listeners: list[Callable[[str, str], None]] = []


def on_finished(listener: Callable[[str, str], None]) -> None:
    """Call `listener(channel, state)` whenever a delivery ends `sent` or `failed` (the edges
    count them; once per listener, however often it is registered)."""
    if listener not in _finished_listeners:
        _finished_listeners.append(listener)


def _finished(delivery: Delivery) -> None:
    for listener in _finished_listeners:
        listener(delivery.channel, delivery.status)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried; the defaults meet the contract (first retry
    within 30 s, capped at 10 minutes, for at least 24 hours). Tests shorten them."""

    first_retry_seconds: float = FIRST_RETRY_SECONDS
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    window: timedelta = RETRY_WINDOW


DEFAULT_RETRY = RetryPolicy()


def _new_row(
    event: OutboxEvent, channel: str, key: str, recipient_id: int | None, now: datetime
) -> dict:
    return {
        "dedupe_key": key,
        "account_id": event.account_id,
        "handoff_id": event.handoff_id,
        "outbox_event_id": event.id,
        "channel": channel,
        "event": event.event,
        "recipient_id": recipient_id,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "reason": None,
        "held_until": None,
        "next_attempt_at": None,
        "details": None,
    }


def _for_event(
    event: OutboxEvent,
    channel: str,
    keyed: list[tuple[str, int | None]],
    extra: list[dict] | None = None,
) -> list[Delivery]:
    """The event's delivery rows for these (dedupe key, recipient) pairs, in that order,
    created where missing with one INSERT (`extra`: more columns of each new row); a row
    another dispatch made first is kept (and read, the only case that costs a second
    query)."""
    if not keyed:
        return []
    now = utcnow()
    rows = [_new_row(event, channel, key, recipient_id, now) for key, recipient_id in keyed]
    for row, more in zip(rows, extra or [], strict=False):
        row.update(more)
    # The rows as parameters of one statement (SQLAlchemy sends them as one multi-row
    # INSERT): a statement with the rows in its VALUES is compiled afresh every time,
    # which was most of what a dispatch cost the worker.
    inserted = db.session.scalars(
        insert_on_conflict(Delivery)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Delivery),
        rows,
    )
    found = {row.dedupe_key: row for row in inserted}
    if existing := [key for key, _ in keyed if key not in found]:
        query = select(Delivery).where(Delivery.dedupe_key.in_(existing))
        found.update((row.dedupe_key, row) for row in db.session.scalars(query))
    return [found[key] for key, _ in keyed]


def claim_socket_delivery(event: OutboxEvent, lease: timedelta) -> Delivery | None:
    """The event's room broadcast, created if missing and taken for one dispatch in the
    same transaction; None if it is done or another dispatch holds it."""
    now = utcnow()
    taken = {"locked_until": now + lease, "attempts": 1}
    # One statement: a new row goes in taken; an existing one is taken only if claimable.
    upsert = insert_on_conflict(Delivery).values(
        {**_new_row(event, SOCKET, f"{SOCKET_KEY_PREFIX}{event.id}", None, now), **taken}
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=["dedupe_key"],
        set_={"locked_until": now + lease, "attempts": Delivery.attempts + 1},
        where=_claimable(now),
    ).returning(Delivery)
    with transaction(expire_on_commit=False):  # the caller reads it next
        return db.session.scalar(upsert.execution_options(populate_existing=True))


def _stored(moment: datetime) -> datetime:
    """A moment as the tables store it: naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def email_deliveries(
    event: OutboxEvent, recipients: Chosen | list[int], step: str | None = None
) -> list[Delivery]:
    """One email per recipient the rule chose (its key from models.notification_rule:
    per handoff and recipient, and per step or reassignment where the rule says so),
    however often the event is dispatched; each carries its reason, and one quiet hours
    hold is `held` until they end. A plain list of ids: all now, inside business hours."""
    if isinstance(recipients, list):
        recipients = Chosen({user_id: BUSINESS_HOURS for user_id in recipients}, {})
    planned: dict[int, dict] = {
        user_id: {"reason": reason} for user_id, reason in recipients.now.items()
    }
    for user_id, (until, reason) in recipients.held.items():
        due = _stored(until)
        planned[user_id] = {
            "reason": reason,
            "status": "held",
            "held_until": due,
            "next_attempt_at": due,
        }
    order = sorted(planned)
    keyed = [(delivery_key(event.event, r, event.handoff_id, event.id, step), r) for r in order]
    with transaction(expire_on_commit=False):  # the caller reads them next
        return _for_event(event, EMAIL, keyed, [planned[r] for r in order])


# The emails that tell a senior about the handoff itself (not a follow-up to one).
ABOUT_THE_HANDOFF = (HANDOFF_CREATED, HANDOFF_REMINDER, HANDOFF_UNCLAIMED)


def first_email_reasons(handoff_id: int) -> dict[int, str]:
    """Who was emailed about the handoff (an email about it that went out, status `sent`),
    each with the reason of their first such email. The "claimed by X" follow-up goes to
    them, and only them, under that same rule."""
    rows = db.session.execute(
        select(Delivery.recipient_id, Delivery.reason)
        .where(
            Delivery.handoff_id == handoff_id,
            Delivery.channel == EMAIL,
            Delivery.event.in_(ABOUT_THE_HANDOFF),
            Delivery.status == "sent",
            Delivery.recipient_id.is_not(None),
        )
        .order_by(Delivery.id)
    )
    first: dict[int, str] = {}
    for recipient_id, reason in rows:
        first.setdefault(recipient_id, reason or BUSINESS_HOURS)
    return first


def release_held(limit: int = 500) -> list[int]:
    """The held emails whose quiet hours have ended, made `pending` again (one UPDATE) so a
    sender takes them; their ids. Each is stamped as expected now, so the sweeper gives its
    send task the grace period before sending it again."""
    now = utcnow()
    due_ids = (
        select(Delivery.id)
        .where(Delivery.status == "held", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .scalar_subquery()
    )
    released = list(
        db.session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(due_ids), Delivery.status == "held")
            .values(status="pending", next_attempt_at=now, locked_until=None)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    db.session.commit()
    return sorted(released)


def _claimable(now: datetime):
    return and_(
        Delivery.status.in_(("pending", "retrying")),
        or_(Delivery.locked_until.is_(None), Delivery.locked_until < now),
    )


def _take(which, lease: timedelta) -> list[Delivery]:
    """The conditional UPDATE that takes the claimable deliveries `which` selects, returning
    the rows as taken (one round trip; the caller commits)."""
    now = utcnow()
    return list(
        db.session.scalars(
            update(Delivery)
            .where(which, _claimable(now))
            .values(locked_until=now + lease, attempts=Delivery.attempts + 1)
            .returning(Delivery)
            .execution_options(populate_existing=True)
        )
    )


def claim(delivery_id: int, lease: timedelta) -> Delivery | None:
    """Take the delivery for one send attempt, or None if it is done or someone else holds it."""
    with transaction(expire_on_commit=False):  # the sender reads it next
        return next(iter(_take(Delivery.id == delivery_id, lease)), None)


def claim_each(delivery_ids: list[int], lease: timedelta, channel: str) -> list[Delivery]:
    """Take, in one UPDATE, each of these deliveries of `channel` that is claimable, for one
    send attempt each; those done, held by another sender or of another channel are left
    out. In the order given."""
    if not delivery_ids:
        return []
    with transaction(expire_on_commit=False):  # the sender reads them next
        taken = _take(and_(Delivery.id.in_(delivery_ids), Delivery.channel == channel), lease)
    by_id = {delivery.id: delivery for delivery in taken}
    return [
        by_id[delivery_id] for delivery_id in dict.fromkeys(delivery_ids) if delivery_id in by_id
    ]


def load_recipients(rows: list[Delivery]) -> list[User]:
    """The rows' recipients in one query (a row taken by UPDATE ... RETURNING comes without
    them); the caller keeps the list while it reads `row.recipient`."""
    ids = {row.recipient_id for row in rows if row.recipient_id is not None}
    if not ids:
        return []
    return list(db.session.scalars(select(User).where(User.id.in_(ids))))


def mark_sent(delivery: Delivery) -> None:
    delivery.status, delivery.sent_at = "sent", utcnow()
    delivery.locked_until, delivery.next_attempt_at, delivery.last_error = None, None, None
    commit_keeping_loaded()
    _finished(delivery)


def mark_failed(delivery: Delivery, error: str) -> None:
    """A permanent failure, or the retry window ran out: visible, never silent."""
    delivery.status, delivery.last_error = "failed", error[:2000]
    delivery.locked_until, delivery.next_attempt_at = None, None
    commit_keeping_loaded()
    _finished(delivery)


def announced_at_each(rows: list[Delivery]) -> dict[int, datetime]:
    """When the change each delivery notifies of was committed (its outbox event's time),
    by delivery id; one query."""
    event_ids = {row.outbox_event_id for row in rows if row.outbox_event_id is not None}
    committed: dict[int, datetime] = {}
    if event_ids:
        query = select(OutboxEvent.id, OutboxEvent.created_at).where(OutboxEvent.id.in_(event_ids))
        committed = {event_id: at for event_id, at in db.session.execute(query)}
    return {row.id: committed.get(row.outbox_event_id, row.created_at) for row in rows}


def backoff_seconds(
    attempts: int, rng: random.Random | None = None, policy: RetryPolicy = DEFAULT_RETRY
) -> float:
    """Exponential backoff with jitter: ~15 s after the first failure (always under 30 s),
    doubling, capped at 10 minutes."""
    exponent = min(max(attempts - 1, 0), 32)  # 2**32 * 15 s is far past any cap
    ceiling = min(policy.max_backoff_seconds, policy.first_retry_seconds * 2**exponent)
    return (rng or random).uniform(ceiling / 2, ceiling)


def mark_retrying(
    delivery: Delivery, error: str, policy: RetryPolicy = DEFAULT_RETRY, at_least: float = 0.0
) -> float | None:
    """Schedule the next attempt and return its delay, or fail the delivery (returning None)
    once the retry window has passed. `at_least`: the receiver asked us to wait this long
    (a Retry-After header)."""
    # An email held by quiet hours has its window from when they ended.
    if utcnow() - max(delivery.created_at, delivery.held_until or delivery.created_at) >= (
        policy.window
    ):
        mark_failed(delivery, f"Gave up after {delivery.attempts} attempts: {error}")
        return None
    delay = max(backoff_seconds(delivery.attempts, policy=policy), at_least)
    delivery.status, delivery.last_error = "retrying", error[:2000]
    delivery.next_attempt_at = utcnow() + timedelta(seconds=delay)
    delivery.locked_until = delivery.next_attempt_at  # nobody may take it before it is due
    commit_keeping_loaded()
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
    # Found by its unique key (`socket:<outbox id>`), which every event's socket row has,
    # whether or not the event is about a handoff (a session's chat has none).
    started = (
        select(Delivery.id)
        .where(Delivery.dedupe_key == literal(SOCKET_KEY_PREFIX) + cast(OutboxEvent.id, String))
        .exists()
    )
    return list(
        db.session.scalars(
            select(OutboxEvent.id)
            .where(
                OutboxEvent.published_at > now - window,
                OutboxEvent.published_at <= now - grace,
                # A PSA writeback has no socket delivery; the PSA sweeper covers its task.
                OutboxEvent.event != PSA_WRITEBACK,
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


def accounts_of(delivery_ids: list[int]) -> dict[int, int]:
    """Each delivery's account (for the send tasks of a sweep, which carry it)."""
    if not delivery_ids:
        return {}
    rows = db.session.execute(
        select(Delivery.id, Delivery.account_id).where(Delivery.id.in_(list(delivery_ids)))
    ).all()
    return {delivery_id: account_id for delivery_id, account_id in sorted(rows)}

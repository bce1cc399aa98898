"""The transactional outbox: notification work committed with the change it announces.

A command calls `announce()` inside its transaction. When that transaction commits, the
listeners registered with `on_commit()` hear about each announced event (its id, name,
rooms and payload, serialized before the commit so no listener reads the database); a
rollback forgets them. The edges register the listeners (the web process emits live and
hands the rest to the broker); nobody has to remember to publish after a commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, event, func, select, update
from sqlalchemy.orm import Session

from models import tenancy
from models.db import db, utcnow
from models.entities import Delivery, Handoff, Message, OutboxEvent, PsaWriteback
from models.events import (
    HANDOFF_CLAIMED,
    HANDOFF_CREATED,
    HANDOFF_REASSIGNED,
    HANDOFF_RELEASED,
    HANDOFF_REMINDER,
    HANDOFF_RESOLVED,
    HANDOFF_UNCLAIMED,
    MESSAGE_CREATED,
    PSA_WRITEBACK,
    STEP_EVENTS,
    WRITEBACK_CREATED,
    is_live,
    is_session_event,
)
from models.representations import event_payload, message_payload, writeback_payload
from models.rooms import recipient_rooms

__all__ = [
    "HANDOFF_CLAIMED",
    "HANDOFF_CREATED",
    "HANDOFF_REASSIGNED",
    "HANDOFF_RELEASED",
    "HANDOFF_REMINDER",
    "HANDOFF_RESOLVED",
    "HANDOFF_UNCLAIMED",
    "MESSAGE_CREATED",
    "PSA_WRITEBACK",
    "STEP_EVENTS",
    "WRITEBACK_CREATED",
]

log = logging.getLogger(__name__)

_ANNOUNCED = "announced_outbox_events"
_READY = "committed_outbox_events"


@dataclass(frozen=True)
class Announced:
    """A committed outbox event, ready to go live without another query."""

    id: int
    event: str
    account_id: int
    created_at: datetime
    rooms: list[str]
    payload: dict[str, Any] = field(repr=False)


_listeners: list[Callable[[list[Announced]], None]] = []


def on_commit(listener: Callable[[list[Announced]], None]) -> None:
    """Call `listener` with the outbox events of every transaction that commits (once per
    listener, however often it is registered)."""
    if listener not in _listeners:
        _listeners.append(listener)


def announce(handoff: Handoff, event_name: str) -> OutboxEvent:
    """Add an outbox row in the caller's transaction; it is written with the commit's flush,
    together with the handoff (which may be new too)."""
    return announce_for_account(handoff.account_id, event_name, handoff)


def announce_for_account(account_id: int, event_name: str, handoff: Handoff | None) -> OutboxEvent:
    """Like `announce`, for work that need not belong to a handoff (a PSA writeback)."""
    outbox_event = OutboxEvent(account_id=account_id, handoff=handoff, event=event_name)
    db.session.add(outbox_event)
    db.session.info.setdefault(_ANNOUNCED, []).append(outbox_event)
    return outbox_event


def announce_message(message: Message) -> OutboxEvent:
    """`message.created` for a chat message, in the caller's transaction: the pages showing
    its session hear it once it is committed."""
    return _announce_for_session(
        MESSAGE_CREATED, message.account_id, message.session_id, message=message
    )


def announce_writeback(writeback: PsaWriteback) -> OutboxEvent:
    """`writeback.created` for a PSA writeback, like `announce_message`."""
    return _announce_for_session(
        WRITEBACK_CREATED, writeback.account_id, writeback.session_id, writeback=writeback
    )


def _announce_for_session(
    event_name: str, account_id: int, session_id: int, **carried
) -> OutboxEvent:
    outbox_event = OutboxEvent(
        account_id=account_id, session_id=session_id, event=event_name, **carried
    )
    db.session.add(outbox_event)
    db.session.info.setdefault(_ANNOUNCED, []).append(outbox_event)
    return outbox_event


def live_form(row: OutboxEvent) -> tuple[list[str], dict[str, Any]]:
    """A live event's rooms and payload, as the web process and a worker both emit it: a
    handoff event carries the handoff's summary to the rooms of its rule; a session's event
    the message or writeback, to the session's room."""
    if is_session_event(row.event):
        carried = (
            message_payload(row.message)
            if row.event == MESSAGE_CREATED
            else writeback_payload(row.writeback)
        )
        return recipient_rooms(row.event, None, row.session_id), carried
    return recipient_rooms(row.event, row.handoff), event_payload(row.handoff)


def _ready(row: OutboxEvent) -> Announced:
    rooms, payload = live_form(row) if is_live(row.event) else ([], {})
    return Announced(
        id=row.id,
        event=row.event,
        account_id=row.account_id,
        created_at=row.created_at,
        rooms=rooms,
        payload=payload,
    )


@event.listens_for(Session, "before_commit")
def _serialize_announced(session: Session) -> None:
    announced = session.info.pop(_ANNOUNCED, None)
    if not announced:
        return
    # A handoff this transaction changed with a bulk UPDATE (claim, resolve) is read back,
    # so the event carries the state being committed; a new one is already complete.
    stale = {
        row.handoff
        for row in announced
        if is_live(row.event) and row.handoff is not None and row.handoff not in session.new
    }
    session.flush()
    for handoff in stale:
        session.refresh(handoff)
    session.info[_READY] = [_ready(row) for row in announced]


@event.listens_for(Session, "after_commit")
def _hand_over_committed(session: Session) -> None:
    ready = session.info.pop(_READY, None)
    if not ready:
        return
    for listener in _listeners:
        try:
            listener(ready)
        except Exception:  # the relay sends whatever a listener could not
            log.exception(
                "Outbox listener %r failed for events %s", listener, [a.id for a in ready]
            )


@event.listens_for(Session, "after_rollback")
def _forget_announced(session: Session) -> None:
    session.info.pop(_ANNOUNCED, None)
    session.info.pop(_READY, None)


def mark_published(outbox_event_ids: list[int], emitted_ids: list[int] = ()) -> None:
    """Record that the dispatch tasks went to the broker, and which of those events already
    went live (`emitted_ids`, a subset): one UPDATE, each timestamp set once.

    Runs on a connection of its own: it may be called from a commit listener, where the
    session that committed cannot be used."""
    if not outbox_event_ids:
        return
    now = utcnow()
    values = {"published_at": func.coalesce(OutboxEvent.published_at, now)}
    if emitted_ids:
        values["emitted_at"] = case(
            (OutboxEvent.id.in_(list(emitted_ids)), func.coalesce(OutboxEvent.emitted_at, now)),
            else_=OutboxEvent.emitted_at,
        )
    with tenancy.system_connection("outbox_relay") as connection:
        connection.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(outbox_event_ids)).values(values)
        )


def accounts_of(outbox_event_ids: list[int]) -> dict[int, int]:
    """Each event's account (the relay's dispatch tasks carry it)."""
    if not outbox_event_ids:
        return {}
    with tenancy.system("outbox_relay"):
        rows = db.session.execute(
            select(OutboxEvent.id, OutboxEvent.account_id).where(
                OutboxEvent.id.in_(list(outbox_event_ids))
            )
        ).all()
    return {event_id: account_id for event_id, account_id in rows}


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


def oldest_undispatched_at(window: timedelta = timedelta(hours=1)):
    """When the oldest outbox event of the last `window` was committed whose live dispatch
    has not finished (its socket delivery is neither sent nor failed, or does not exist
    yet); None when there is no backlog. Beyond the window, dispatches have long given up."""
    finished = (
        select(Delivery.id)
        .where(
            Delivery.outbox_event_id == OutboxEvent.id,
            Delivery.channel == "socket",
            Delivery.status.in_(("sent", "failed")),
        )
        .exists()
    )
    with tenancy.system("metrics"):
        return db.session.scalar(
            select(func.min(OutboxEvent.created_at)).where(
                OutboxEvent.created_at >= utcnow() - window, ~finished
            )
        )

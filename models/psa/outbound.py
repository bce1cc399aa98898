"""Posting a writeback to the PSA ticket: queued with the writeback (a delivery row and an
outbox event in the same transaction), then attempted by the `psa` worker pool.

Never posted twice: the note carries a marker naming the writeback, and every attempt after
the first lists the ticket's notes and looks for it before posting (the PSA may have
created the note although its answer never reached us).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from models import deliveries, outbox
from models.db import db
from models.entities import Delivery, FlowSession, Handoff, PsaConnection, PsaWriteback
from models.psa import connection as connections
from models.psa.base import (
    PsaAuthRejected,
    PsaConnector,
    PsaPermissionDenied,
    PsaRejected,
    PsaUnavailable,
)
from models.psa.settings import PsaSettings

log = logging.getLogger(__name__)

# The retry's look-up asks for notes changed since this long before the delivery was queued
# (the PSA's clock may differ from ours), not for every page of the ticket.
LOOKUP_MARGIN = timedelta(hours=1)

NOT_CONNECTED = "not_connected"
NO_TICKET = "This session is not linked to a PSA ticket (psa_ticket_id), so nothing was posted."


def marker(writeback: PsaWriteback) -> str:
    return f"[Escalation Mode note {writeback.account_id}-{writeback.id}]"


def note_text(writeback: PsaWriteback) -> str:
    return f"{writeback.note}\n\n{marker(writeback)}"


def is_ours(text: str) -> bool:
    return "[Escalation Mode note " in text


def broken(connection: PsaConnection) -> str:
    reason = connection.status_message or "the PSA refused our keys"
    return f"The PSA connection is broken ({reason}); an admin must save new keys in Settings."


def queue_delivery(
    session: FlowSession, writeback: PsaWriteback, handoff: Handoff | None
) -> Delivery | None:
    """In the caller's transaction (the writeback is flushed): a delivery row and its outbox
    event, or nothing when the account has no PSA connection."""
    connection = connections.get_connection(session.account_id)
    if connection is None:
        return None
    delivery = Delivery(
        account_id=session.account_id,
        handoff_id=handoff.id if handoff else None,
        channel=deliveries.PSA,
        event=outbox.PSA_WRITEBACK,
        recipient_id=None,
        dedupe_key=f"psa:{writeback.id}",
    )
    if not session.psa_ticket_id or connection.status == "broken":
        delivery.status = "failed"
        delivery.last_error = NO_TICKET if not session.psa_ticket_id else broken(connection)
        db.session.add(delivery)
    else:
        event = outbox.announce_for_account(session.account_id, outbox.PSA_WRITEBACK, handoff)
        db.session.flush()
        delivery.status, delivery.outbox_event_id = "pending", event.id
        db.session.add(delivery)
    writeback.delivery = delivery
    return delivery


def delivery_for_event(outbox_event_id: int) -> Delivery | None:
    return db.session.scalar(
        select(Delivery).where(
            Delivery.outbox_event_id == outbox_event_id, Delivery.channel == deliveries.PSA
        )
    )


@dataclass(frozen=True)
class Attempt:
    status: str  # sent | retrying | failed | skipped
    retry_in: float | None = None


def _posted(delivery: Delivery, writeback: PsaWriteback, note_id: str) -> Attempt:
    writeback.psa_note_id = note_id
    deliveries.mark_sent(delivery)  # commits the note id with the status
    log.info("PSA writeback %s posted as note %s", writeback.id, note_id)
    return Attempt("sent")


def _post(psa: PsaConnector, delivery: Delivery, writeback: PsaWriteback, ticket: str) -> str:
    if delivery.attempts > 1:  # an earlier attempt may have posted it and lost the answer
        since = delivery.created_at - LOOKUP_MARGIN
        for note in psa.list_notes(ticket, since=since):
            if marker(writeback) in note.text:
                log.info("PSA writeback %s was already posted (note %s)", writeback.id, note.id)
                return note.id
    return psa.create_note(ticket, note_text(writeback)).id


def attempt(delivery_id: int, settings: PsaSettings) -> Attempt:
    """Claim the delivery and post the note once. A delivery that is done or held by another
    worker is left alone, so a duplicate task is harmless."""
    row = db.session.get(Delivery, delivery_id)
    if row is None or row.channel != deliveries.PSA:
        return Attempt("skipped")
    delivery = deliveries.claim(delivery_id, settings.lease)
    if delivery is None:
        return Attempt("skipped")
    writeback = db.session.scalar(
        select(PsaWriteback).where(PsaWriteback.delivery_id == delivery.id)
    )
    session = db.session.get(FlowSession, writeback.session_id) if writeback else None
    connection = connections.get_connection(delivery.account_id)
    if writeback is None or session is None or not session.psa_ticket_id:
        deliveries.mark_failed(delivery, NO_TICKET)
        return Attempt("failed")
    if connection is None:
        deliveries.mark_failed(
            delivery, "The PSA connection was removed before the note was posted."
        )
        return Attempt("failed")
    if connection.status == "broken":
        deliveries.mark_failed(delivery, broken(connection))
        return Attempt("failed")
    try:
        psa = connections.connector(connection, settings)
        note_id = _post(psa, delivery, writeback, session.psa_ticket_id)
    except PsaAuthRejected as exc:
        connections.mark_broken(connection.id, exc.message)
        deliveries.mark_failed(delivery, exc.message)
        log.warning("PSA writeback %s: credentials refused; connection marked broken", writeback.id)
        return Attempt("failed")
    except PsaPermissionDenied as exc:  # the keys work: the connection is not broken
        connections.note_permission_problem(connection.id, exc.message)
        deliveries.mark_failed(delivery, exc.message)
        log.warning("PSA writeback %s: %s", writeback.id, exc.message)
        return Attempt("failed")
    except PsaRejected as exc:
        deliveries.mark_failed(delivery, exc.message)
        return Attempt("failed")
    except PsaUnavailable as exc:
        return _retry(delivery, exc.message, settings, exc.retry_after or 0.0)
    except Exception as exc:  # a bug or a broken setting: visible on the delivery, retried
        db.session.rollback()
        log.exception("PSA writeback %s: unexpected error", writeback.id)
        return _retry(delivery, f"Unexpected error: {exc!r}", settings)
    connections.clear_permission_problem(connection, "POST")
    return _posted(delivery, writeback, note_id)


def _retry(
    delivery: Delivery, reason: str, settings: PsaSettings, at_least: float = 0.0
) -> Attempt:
    delay = deliveries.mark_retrying(delivery, reason, settings.retry, at_least)
    log.info("PSA delivery %s attempt %s: %s", delivery.id, delivery.attempts, reason)
    return Attempt("failed") if delay is None else Attempt("retrying", delay)

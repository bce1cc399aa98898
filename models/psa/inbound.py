"""Notes written directly in the PSA ticket: a note by the claiming senior after the claim
is a `psa_writeback` first action at the note's own time.

ConnectWise's callbacks only name the ticket that changed; the notes themselves are always
fetched from the API (never taken from the callback body), so a forged, repeated or
out-of-order callback can at most cause a harmless re-read. A PSA without callbacks
(Autotask) is read by the beat's poll alone. Reads are bounded: only notes from an hour
before the earliest claim on the ticket on are asked for.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from models.accounts import normalize_email
from models.db import db, transaction
from models.entities import FlowSession, Handoff, PsaConnection, User
from models.psa import connection as connections
from models.psa.base import (
    PsaAuthRejected,
    PsaConnector,
    PsaMember,
    PsaNote,
    PsaPermissionDenied,
)
from models.psa.members import linked_users
from models.psa.outbound import is_ours
from models.psa.settings import PsaSettings
from models.sessions import record_first_action

# The worker task that reads a ticket's notes (workers/psa.py), named here so the web
# edge can ask for it on a callback without importing the workers.
SYNC_TICKET_TASK = "workers.psa.sync_ticket"

log = logging.getLogger(__name__)

# Notes are asked for from this long before the earliest claim: the PSA's clock may differ
# from ours, and a note entered before the claim is dropped here anyway.
CLOCK_MARGIN = timedelta(hours=1)


def linked_sessions(account_id: int, ticket_id: str) -> list[FlowSession]:
    return list(
        db.session.scalars(
            select(FlowSession)
            .where(FlowSession.account_id == account_id, FlowSession.psa_ticket_id == ticket_id)
            .order_by(FlowSession.id)
        )
    )


def _claimed_handoff(session: FlowSession) -> Handoff | None:
    """The session's latest handoff, if someone claimed it. One with a first action already
    stays in play: a note read late may have been written before that action."""
    handoff = db.session.scalar(
        select(Handoff).where(Handoff.session_id == session.id).order_by(Handoff.id.desc()).limit(1)
    )
    if handoff is None or handoff.claimed_by_id is None or handoff.claimed_at is None:
        return None
    return handoff


class _Who:
    """Whether a note's PSA member is a given user: the admin's mapping first, then email
    (each member looked up in the PSA at most once per read). A PSA whose notes carry only
    the member's id (Autotask) has the login identifier looked up with the member."""

    def __init__(self, psa: PsaConnector, account_id: int) -> None:
        self.psa = psa
        self.links = linked_users(account_id)
        self.members: dict[str, PsaMember | None] = {}

    def _member(self, member_id: str) -> PsaMember | None:
        if member_id not in self.members:
            self.members[member_id] = self.psa.get_member(member_id)
        return self.members[member_id]

    def is_user(self, note: PsaNote, user: User) -> bool:
        identifier = (note.member_identifier or "").lower()
        if not identifier and note.member_id is not None and self.links:
            member = self._member(note.member_id)
            identifier = (member.identifier or "").lower() if member else ""
        if identifier in self.links:
            return self.links[identifier] == user.id
        if note.member_id is None:
            return False
        member = self._member(note.member_id)
        email = member.email if member and member.email else None
        return email is not None and normalize_email(email) == normalize_email(user.email)


def _first_note_by(
    who: _Who, notes: list[PsaNote], claimer: User, claimed_at: datetime
) -> PsaNote | None:
    """The earliest note after the claim written by the claimer."""
    for note in sorted(notes, key=lambda n: (n.created_at, n.id)):
        if note.created_at < claimed_at or is_ours(note.text):
            continue
        if who.is_user(note, claimer):
            return note
    return None


def sync_ticket(account_id: int, ticket_id: str, settings: PsaSettings) -> int:
    """Read the ticket's notes and record the first actions they show; returns how many were
    recorded. Raises the PSA's errors (the task decides about retrying)."""
    sessions = [s for s in linked_sessions(account_id, ticket_id) if _claimed_handoff(s)]
    connection = connections.get_connection(account_id)
    if not sessions or connection is None or connection.status != "connected":
        return 0
    psa = connections.connector(connection, settings)
    handoffs = {session.id: _claimed_handoff(session) for session in sessions}
    since = min(handoff.claimed_at for handoff in handoffs.values() if handoff is not None)
    try:
        notes = psa.list_notes(ticket_id, since=since - CLOCK_MARGIN)
        who = _Who(psa, account_id)
        found = {
            session_id: _first_note_by(who, notes, handoff.claimed_by, handoff.claimed_at)
            for session_id, handoff in handoffs.items()
            if handoff is not None
        }
    except PsaAuthRejected as exc:
        connections.mark_broken(connection.id, exc.message)
        raise
    except PsaPermissionDenied as exc:
        # Not "nothing found": the admin sees what the PSA user may not read.
        connections.note_permission_problem(connection.id, exc.message)
        log.warning("Account %s ticket %s: %s", account_id, ticket_id, exc.message)
        raise
    connections.clear_permission_problem(connection, "GET")
    recorded = 0
    for session in sessions:
        handoff = handoffs[session.id]
        note = found.get(session.id)
        if handoff is None or note is None:
            continue
        with transaction():
            if record_first_action(session, handoff.claimed_by, note.created_at, "psa_writeback"):
                recorded += 1
                log.info(
                    "Handoff %s: first action is PSA note %s at %s",
                    handoff.id,
                    note.id,
                    note.created_at,
                )
    return recorded


def tickets_to_poll(limit: int = 200) -> list[tuple[int, str]]:
    """(account, ticket) of claimed handoffs still without a first action whose account's
    PSA connection works: what the beat polls when callbacks do not arrive."""
    rows = db.session.execute(
        select(FlowSession.account_id, FlowSession.psa_ticket_id)
        .join(Handoff, Handoff.session_id == FlowSession.id)
        .join(PsaConnection, PsaConnection.account_id == FlowSession.account_id)
        .where(
            Handoff.status == "claimed",
            Handoff.first_action_at.is_(None),
            FlowSession.psa_ticket_id.is_not(None),
            PsaConnection.status == "connected",
        )
        .distinct()
        .limit(limit)
    ).all()
    return [(account_id, ticket_id) for account_id, ticket_id in rows]

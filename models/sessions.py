"""FlowPilot sessions, their chat and PSA writebacks, and the first-action rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from models import outbox, permissions, timeline
from models.db import db, transaction
from models.entities import (
    DEFAULT_PRIORITY,
    LIVE_HANDOFF_STATUSES,
    PRIORITIES,
    FlowSession,
    Handoff,
    Message,
    PsaWriteback,
    User,
)
from models.errors import Conflict, Forbidden, NotFound, ValidationFailed
from models.psa.outbound import queue_delivery

# A senior wrote in an escalated session without holding its claim.
CLAIM_REQUIRED = "claim_required"


def create_session(
    technician: User,
    title: str,
    snapshot: dict[str, Any],
    ai_assessment: dict[str, Any] | None,
    customer: str | None = None,
    priority: str = DEFAULT_PRIORITY,
    psa_ticket_id: str | None = None,
) -> FlowSession:
    if priority not in PRIORITIES:
        raise ValidationFailed("Some fields are invalid.", {"priority": ["Must be p1 to p4."]})
    with transaction():
        session = FlowSession(
            account_id=technician.account_id,
            technician=technician,
            title=title.strip(),
            snapshot=snapshot,
            ai_assessment=ai_assessment or {},
            status="active",
            customer=(customer or "").strip() or None,
            priority=priority,
            psa_ticket_id=psa_ticket_id,
        )
        db.session.add(session)
    return session


def get_session(user: User, session_id: int) -> FlowSession:
    """The session, if the user may see it: its technician, or a senior of the account."""
    session = db.session.scalar(
        select(FlowSession).where(
            FlowSession.id == session_id, FlowSession.account_id == user.account_id
        )
    )
    if session is None:
        raise NotFound("No such session.")
    if session.technician_id != user.id and not user.is_senior:
        raise Forbidden("Only the session's technician and the account's seniors may see it.")
    return session


def messages_of(session: FlowSession) -> list[Message]:
    return list(
        db.session.scalars(
            select(Message).where(Message.session_id == session.id).order_by(Message.id)
        )
    )


def latest_handoff(session: FlowSession) -> Handoff | None:
    return db.session.scalar(
        select(Handoff).where(Handoff.session_id == session.id).order_by(Handoff.id.desc()).limit(1)
    )


def sessions_of(technician: User, limit: int = 50) -> list[FlowSession]:
    """The technician's own sessions, newest first."""
    return list(
        db.session.scalars(
            select(FlowSession)
            .where(
                FlowSession.account_id == technician.account_id,
                FlowSession.technician_id == technician.id,
            )
            .order_by(FlowSession.id.desc())
            .limit(limit)
        )
    )


def writebacks_of(session: FlowSession) -> list[PsaWriteback]:
    """The notes written back to the session's PSA ticket, oldest first."""
    return list(
        db.session.scalars(
            select(PsaWriteback)
            .where(PsaWriteback.session_id == session.id)
            .order_by(PsaWriteback.id)
        )
    )


def write_refusal(user: User, session: FlowSession, handoff: Handoff | None) -> Conflict | None:
    """Why `user` may not write (chat, PSA writeback) in the session now, or None.

    While a handoff is open or claimed, the seniors watch read-only: only the senior holding
    the claim takes over. The session's own technician always keeps their chat."""
    if session.technician_id == user.id or handoff is None:
        return None
    if handoff.status not in LIVE_HANDOFF_STATUSES or handoff.claimed_by_id == user.id:
        return None
    claimer = handoff.claimed_by
    details = {
        "handoff_id": handoff.id,
        "status": handoff.status,
        "claimed_by": {"id": claimer.id, "name": claimer.name} if claimer else None,
    }
    if claimer is None:
        message = "This session is escalated: claim it to take over."
    else:
        message = f"Claimed by {claimer.name}: only they can write here."
    return Conflict(message, details, code=CLAIM_REQUIRED)


def actions_for(user: User, session: FlowSession, handoff: Handoff | None) -> dict[str, Any]:
    """What `user` may do on the session and its latest handoff right now, by the rules the
    operations themselves apply (models/permissions.py, write_refusal): the page shows
    exactly these actions and restates no rule of its own."""
    refusal = write_refusal(user, session, handoff)
    held = handoff is not None and handoff.status == "claimed"
    hands_on = held and permissions.holds_claim_or_admin(user, handoff)
    return {
        "claim": permissions.can_claim(user, handoff),
        "resolve": permissions.can_resolve(user, handoff),
        "release": hands_on,
        "reassign": hands_on,
        "escalate": permissions.can_escalate(user, session, handoff),
        "may_escalate": permissions.may_escalate(user, session),
        "write": refusal is None,
        "read_only_reason": refusal.message if refusal is not None else "",
        "holds_claim": handoff is not None and held and handoff.claimed_by_id == user.id,
    }


def _writable(author: User, session_id: int) -> tuple[FlowSession, Handoff | None]:
    session = get_session(author, session_id)
    handoff = latest_handoff(session)
    if (refusal := write_refusal(author, session, handoff)) is not None:
        raise refusal
    return session, handoff


def post_message(author: User, session_id: int, body: str) -> Message:
    session, handoff = _writable(author, session_id)
    with transaction():
        message = Message(
            account_id=session.account_id, session_id=session.id, author=author, body=body
        )
        db.session.add(message)
        db.session.flush()
        record_first_action(session, author, message.created_at, "chat")
        outbox.announce_message(message)
    return message


def write_back_to_psa(author: User, session_id: int, note: str) -> PsaWriteback:
    """Record the writeback and, when the account has a PSA connection, queue its posting
    to the ticket (a delivery and an outbox event, committed with it)."""
    session, handoff = _writable(author, session_id)
    with transaction(expire_on_commit=False):
        writeback = PsaWriteback(
            account_id=session.account_id, session_id=session.id, author=author, note=note
        )
        db.session.add(writeback)
        db.session.flush()
        queue_delivery(session, writeback, handoff)
        record_first_action(session, author, writeback.created_at, "psa_writeback")
        outbox.announce_writeback(writeback)
    return writeback


def record_first_action(session: FlowSession, actor: User, at: datetime, kind: str) -> bool:
    """The claiming senior's first chat message or PSA writeback after the claim.

    One conditional UPDATE: only the senior holding the claim when they act (after a release
    or a reassignment, the new holder), only after their claim, only while unset; so the
    technician's messages never count and a later action never overwrites an earlier one.
    TTFA runs from the handoff's creation whoever acts: queue time is included.
    """
    handoff = latest_handoff(session)
    if handoff is None or handoff.claimed_by_id != actor.id:
        return False
    if handoff.first_action_at is not None and handoff.first_action_at <= at:
        return False
    seconds = max((at - handoff.created_at).total_seconds(), 0.0)
    recorded = db.session.execute(
        update(Handoff)
        .where(
            Handoff.id == handoff.id,
            Handoff.claimed_by_id == actor.id,
            Handoff.claimed_at <= at,
            or_(Handoff.first_action_at.is_(None), Handoff.first_action_at > at),
        )
        .values(
            first_action_at=at,
            first_action_kind=kind,
            first_action_by_id=actor.id,
            time_to_first_action_seconds=seconds,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if recorded:
        timeline.record(handoff, timeline.FIRST_ACTION, actor, at, action=kind)
    db.session.expire(handoff)
    return bool(recorded)


__all__ = [
    "CLAIM_REQUIRED",
    "actions_for",
    "create_session",
    "get_session",
    "latest_handoff",
    "messages_of",
    "post_message",
    "record_first_action",
    "sessions_of",
    "write_back_to_psa",
    "write_refusal",
    "writebacks_of",
]

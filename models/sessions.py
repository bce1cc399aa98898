"""FlowPilot sessions, their chat and PSA writebacks, and the first-action rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from models import timeline
from models.db import db, transaction
from models.entities import FlowSession, Handoff, Message, PsaWriteback, User
from models.errors import Forbidden, NotFound


def create_session(
    technician: User, title: str, snapshot: dict[str, Any], ai_assessment: dict[str, Any] | None
) -> FlowSession:
    with transaction():
        session = FlowSession(
            account_id=technician.account_id,
            technician=technician,
            title=title.strip(),
            snapshot=snapshot,
            ai_assessment=ai_assessment or {},
            status="active",
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


def post_message(author: User, session_id: int, body: str) -> Message:
    session = get_session(author, session_id)
    with transaction():
        message = Message(
            account_id=session.account_id, session_id=session.id, author=author, body=body
        )
        db.session.add(message)
        db.session.flush()
        _record_first_action(session, author, message.created_at, "chat")
    return message


def write_back_to_psa(author: User, session_id: int, note: str) -> PsaWriteback:
    session = get_session(author, session_id)
    with transaction():
        writeback = PsaWriteback(
            account_id=session.account_id, session_id=session.id, author=author, note=note
        )
        db.session.add(writeback)
        db.session.flush()
        _record_first_action(session, author, writeback.created_at, "psa_writeback")
    return writeback


def _record_first_action(session: FlowSession, actor: User, at: datetime, kind: str) -> None:
    """The claiming senior's first chat message or PSA writeback after the claim, stored once.

    One conditional UPDATE: only the senior holding the claim when they act (after a release
    or a reassignment, the new holder), only after their claim, only while unset; so the
    technician's messages never count and a later action never overwrites an earlier one.
    TTFA runs from the handoff's creation whoever acts: queue time is included.
    """
    handoff = latest_handoff(session)
    if handoff is None or handoff.claimed_by_id != actor.id or handoff.first_action_at is not None:
        return
    seconds = max((at - handoff.created_at).total_seconds(), 0.0)
    recorded = db.session.execute(
        update(Handoff)
        .where(
            Handoff.id == handoff.id,
            Handoff.claimed_by_id == actor.id,
            Handoff.claimed_at <= at,
            Handoff.first_action_at.is_(None),
        )
        .values(first_action_at=at, first_action_kind=kind, time_to_first_action_seconds=seconds)
        .execution_options(synchronize_session=False)
    ).rowcount
    if recorded:
        timeline.record(handoff, timeline.FIRST_ACTION, actor, at, action=kind)
    db.session.expire(handoff)


__all__ = [
    "create_session",
    "get_session",
    "latest_handoff",
    "messages_of",
    "post_message",
    "sessions_of",
    "write_back_to_psa",
    "writebacks_of",
]

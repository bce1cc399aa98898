"""The handoff lifecycle: escalate, claim, release, reassign, resolve, and the seniors' queue.

Every change writes its timeline row (models/timeline.py) in its own transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from models import outbox, permissions, timeline
from models.db import db, transaction, utcnow
from models.entities import (
    LIVE_HANDOFF_STATUSES,
    Delivery,
    FlowSession,
    Handoff,
    Message,
    User,
)
from models.errors import Conflict, Forbidden, NotFound
from models.handoff_steps import Policy
from models.sessions import get_session

RECENT_MESSAGES_IN_PACKAGE = 20

_claim_conflict_listeners: list[Callable[[], None]] = []


def on_claim_conflict(listener: Callable[[], None]) -> None:
    """Call `listener()` whenever a claim is refused because someone else claimed first (the
    edges count them; once per listener, however often it is registered)."""
    if listener not in _claim_conflict_listeners:
        _claim_conflict_listeners.append(listener)


def get_handoff(user: User, handoff_id: int) -> Handoff:
    handoff = db.session.scalar(
        select(Handoff).where(Handoff.id == handoff_id, Handoff.account_id == user.account_id)
    )
    if handoff is None:
        raise NotFound("No such escalation.")
    if not user.is_senior and handoff.escalated_by_id != user.id:
        session = db.session.get(FlowSession, handoff.session_id)
        if session is None or session.technician_id != user.id:
            raise Forbidden("Only the account's seniors and the escalating technician may see it.")
    return handoff


def scoped_idempotency_key(user: User, key: str) -> str:
    """Keys belong to the user who sent them: a colleague replaying the same key gets their
    own handoff, never a 409 that names someone else's. Stored as `u<id>:<sha256 of key>`
    (fits the column whatever the key's length)."""
    return f"u{user.id}:{hashlib.sha256(key.encode()).hexdigest()}"


def _by_idempotency_key(user: User, key: str) -> Handoff | None:
    return db.session.scalar(
        select(Handoff).where(
            Handoff.account_id == user.account_id,
            Handoff.idempotency_key == scoped_idempotency_key(user, key),
        )
    )


def _live_handoff(session_id: int) -> Handoff | None:
    return db.session.scalar(
        select(Handoff).where(
            Handoff.session_id == session_id, Handoff.status.in_(LIVE_HANDOFF_STATUSES)
        )
    )


def _already_escalated(handoff: Handoff | None) -> Conflict:
    details = {"handoff_id": handoff.id, "status": handoff.status} if handoff else {}
    return Conflict("This session is already escalated.", details, code="already_escalated")


def _replay(session_id: int, existing: Handoff) -> Handoff:
    if existing.session_id != session_id:
        raise Conflict(
            "This Idempotency-Key was already used for another session.",
            {"handoff_id": existing.id},
            code="idempotency_key_reused",
        )
    return existing


def _recent_messages(session: FlowSession) -> list[dict]:
    """The chat's last messages, oldest first, as the package shows them (one narrow query)."""
    rows = db.session.execute(
        select(User.name, Message.body, Message.created_at)
        .join(User, User.id == Message.author_id)
        .where(Message.session_id == session.id)
        .order_by(Message.id.desc())
        .limit(RECENT_MESSAGES_IN_PACKAGE)
    ).all()
    return [
        {"author": name, "body": body, "created_at": created_at.isoformat() + "Z"}
        for name, body, created_at in reversed(rows)
    ]


def _package(session: FlowSession, user: User, reason: str, notes: str | None) -> dict:
    return {
        "snapshot": session.snapshot,
        "ai_assessment": session.ai_assessment,
        "reason": reason,
        "notes": notes,
        "session_title": session.title,
        "technician": {"id": session.technician.id, "name": session.technician.name},
        "escalated_by": {"id": user.id, "name": user.name},
        "recent_messages": _recent_messages(session),
    }


def escalate(
    user: User,
    session_id: int,
    reason: str,
    notes: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[Handoff, bool]:
    """Write the handoff, move the session to `escalated`, announce `handoff.created`.

    Returns (handoff, created). A replayed Idempotency-Key returns the original handoff.
    """
    session = get_session(user, session_id)
    if not permissions.may_escalate(user, session):
        raise Forbidden("Only the session's technician or an admin may escalate it.")
    if idempotency_key and (existing := _by_idempotency_key(user, idempotency_key)):
        return _replay(session.id, existing), False
    # No look for a live handoff first: the partial unique index refuses a second one, and
    # the IntegrityError below answers it; escalate's hot path saves a query.
    try:
        with transaction(expire_on_commit=False):
            created_at = utcnow()
            handoff = Handoff(
                account_id=session.account_id,
                session_id=session.id,
                escalated_by_id=user.id,
                status="open",
                title=session.title,
                reason=reason,
                escalation_package=_package(session, user, reason, notes),
                idempotency_key=(
                    scoped_idempotency_key(user, idempotency_key) if idempotency_key else None
                ),
                created_at=created_at,
                reminders_sent=0,
                next_step_at=Policy.of(user.account, session.priority).next_step_at(
                    created_at, 0, False
                ),
            )
            db.session.add(handoff)
            session.status = "escalated"
            outbox.announce(handoff, outbox.HANDOFF_CREATED)
            timeline.record(handoff, timeline.CREATED, user, created_at, reason=reason)
    except IntegrityError:
        # A concurrent request won: the same key replayed, or the same session escalated.
        if idempotency_key and (existing := _by_idempotency_key(user, idempotency_key)):
            return _replay(session.id, existing), False
        raise _already_escalated(_live_handoff(session.id)) from None
    return handoff, True


def set_session_status(handoff: Handoff, status: str) -> None:
    """Move the handoff's session along with it (inside the caller's transaction)."""
    db.session.execute(
        update(FlowSession)
        .where(FlowSession.id == handoff.session_id)
        .values(status=status)
        .execution_options(synchronize_session=False)
    )


def _ref(user: User | None) -> dict | None:
    return {"id": user.id, "name": user.name} if user else None


# A lost claim's message ({name}: who holds it); the queue page says the same of a card
# someone else took.
ALREADY_CLAIMED_BY = "Already claimed by {name}"


def already_claimed(handoff: Handoff) -> Conflict:
    claimer = handoff.claimed_by
    return Conflict(
        ALREADY_CLAIMED_BY.format(name=claimer.name),
        {"claimed_by": _ref(claimer)},
        code="already_claimed",
    )


# A claim whose UPDATE lost to a holder who released it before we looked again tries again.
CLAIM_ATTEMPTS = 3


def _try_claim(user: User, handoff: Handoff) -> bool:
    """One conditional UPDATE (status 'open' → 'claimed'), checked by its row count."""
    now = utcnow()
    waited = max((now - handoff.created_at).total_seconds(), 0.0)
    with transaction():
        won = db.session.execute(
            update(Handoff)
            .where(
                Handoff.id == handoff.id,
                Handoff.account_id == user.account_id,
                Handoff.status == "open",
            )
            .values(
                status="claimed",
                claimed_by_id=user.id,
                claimed_at=now,
                # A claim stops the unclaimed steps; the first claim is kept for analytics.
                next_step_at=None,
                first_claimed_at=func.coalesce(Handoff.first_claimed_at, now),
                time_to_claim_seconds=func.coalesce(Handoff.time_to_claim_seconds, waited),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if won:
            timeline.record(handoff, timeline.CLAIMED, user, now)
            set_session_status(handoff, "active")
            outbox.announce(handoff, outbox.HANDOFF_CLAIMED)
    return bool(won)


def claim(user: User, handoff_id: int) -> Handoff:
    """Exactly one of any number of racing seniors wins: one conditional UPDATE, checked by
    its row count. The same senior claiming again gets the handoff back. A claim that lost
    to a holder who has released it by the time we look again tries again."""
    handoff = get_handoff(user, handoff_id)
    if not permissions.may_claim(user):
        # Checked here, so every caller (route, page, task, CLI) gets the same answer.
        raise Forbidden("Only the account's engineers and admins may claim an escalation.")
    for _ in range(CLAIM_ATTEMPTS):
        won = _try_claim(user, handoff)
        db.session.refresh(handoff)
        if won or handoff.status != "open":
            break
    if won or (handoff.status == "claimed" and handoff.claimed_by_id == user.id):
        return handoff
    if handoff.status == "resolved":
        # Nobody holds it any more: "Already claimed by <yourself>" would mislead its claimer.
        raise Conflict(
            "This escalation is already resolved.",
            {"status": handoff.status, "claimed_by": _ref(handoff.claimed_by)},
            code="already_resolved",
        )
    if handoff.claimed_by_id is not None:
        for listener in _claim_conflict_listeners:
            listener()
        raise already_claimed(handoff)
    raise Conflict("This escalation can no longer be claimed.", code="not_claimable")


def resolve(user: User, handoff_id: int, outcome: str | None = None) -> Handoff:
    """Close a claimed handoff (its claimer or an admin), with an optional note on how it
    ended. Resolving again changes nothing, the first outcome included."""
    handoff = get_handoff(user, handoff_id)
    now = utcnow()
    if user.is_senior and handoff.status == "open":
        # A senior is told to claim it first; a technician is refused whatever the state.
        raise Conflict("Claim this escalation before resolving it.", code="not_claimed")
    if not permissions.holds_claim_or_admin(user, handoff):
        raise Forbidden("Only the senior who claimed it or an admin may resolve it.")
    if handoff.status == "resolved":
        return handoff
    with transaction():
        done = db.session.execute(
            update(Handoff)
            .where(Handoff.id == handoff.id, Handoff.status == "claimed")
            .values(status="resolved", resolved_at=now, outcome=outcome or None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done:
            set_session_status(handoff, "resolved")
            outbox.announce(handoff, outbox.HANDOFF_RESOLVED)
            timeline.record(handoff, timeline.RESOLVED, user, now)
    db.session.refresh(handoff)
    return handoff


def deliveries_of(user: User, handoff_id: int) -> list[Delivery]:
    handoff = get_handoff(user, handoff_id)
    return list(
        db.session.scalars(
            select(Delivery).where(Delivery.handoff_id == handoff.id).order_by(Delivery.id)
        )
    )

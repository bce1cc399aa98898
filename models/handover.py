"""Handing a claimed handoff on: release it back to the queue, or reassign it to a senior.

Both are one conditional UPDATE that names the holder the caller saw (`WHERE status =
'claimed' AND claimed_by_id = <holder>`), checked by its row count: of a release racing a
claim, two racing reassigns or a release racing a reassign, exactly one changes the row and
the others get a 409 saying what the handoff is now.
"""

from __future__ import annotations

from sqlalchemy import select, update

from models import outbox, permissions, timeline
from models.db import db, transaction, utcnow
from models.entities import Handoff, User
from models.errors import Conflict, Forbidden, NotFound, ValidationFailed
from models.escalations import already_claimed, get_handoff, set_session_status
from models.handoff_steps import Policy
from models.rooms import SENIOR_ROLES


def _holder_or_admin(user: User, handoff: Handoff, what: str) -> None:
    """Only the senior holding the claim, or an admin, may hand it on; it must be claimed.
    A senior is told why an unclaimed handoff cannot be handed on; a technician is refused."""
    if user.is_senior and handoff.status == "open":
        raise Conflict("Nobody holds this escalation.", {"status": "open"}, code="not_claimed")
    if user.is_senior and handoff.status == "resolved":
        raise Conflict(
            "This escalation is already resolved.", {"status": "resolved"}, code="already_resolved"
        )
    if not permissions.holds_claim_or_admin(user, handoff):
        raise Forbidden(f"Only the senior who claimed it or an admin may {what} it.")


def _changed_meanwhile(handoff: Handoff) -> Conflict:
    """The row moved between our read and our UPDATE: say what it is now."""
    db.session.refresh(handoff)
    if handoff.status == "claimed":
        return already_claimed(handoff)
    return Conflict(
        "This escalation changed meanwhile; reload it.",
        {"status": handoff.status},
        code="not_claimed" if handoff.status == "open" else "already_resolved",
    )


def _update_if_still_held(handoff: Handoff, holder: User, **values: object) -> bool:
    """Change the handoff only if `holder` still holds its claim (inside the caller's
    transaction); False when a racing claim, release or reassign changed it first."""
    changed = db.session.execute(
        update(Handoff)
        .where(
            Handoff.id == handoff.id,
            Handoff.status == "claimed",
            Handoff.claimed_by_id == holder.id,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    return bool(changed)


def release(user: User, handoff_id: int, reason: str) -> Handoff:
    """Back to `open` with nobody holding it; the seniors hear `handoff.released` and the
    unclaimed steps resume on the clock that started at creation."""
    handoff = get_handoff(user, handoff_id)
    _holder_or_admin(user, handoff, "release")
    holder = handoff.claimed_by
    policy = Policy.of(user.account, handoff.session.priority)
    next_step_at = policy.next_step_at(
        handoff.created_at, handoff.reminders_sent, handoff.escalated_to_admins_at is not None
    )
    with transaction():
        done = _update_if_still_held(
            handoff,
            holder,
            status="open",
            claimed_by_id=None,
            claimed_at=None,
            next_step_at=next_step_at,
        )
        if done:
            set_session_status(handoff, "escalated")
            outbox.announce(handoff, outbox.HANDOFF_RELEASED)
            timeline.record(
                handoff, timeline.RELEASED, user, reason=reason, holder=timeline.ref(holder)
            )
    if not done:
        raise _changed_meanwhile(handoff)
    db.session.refresh(handoff)
    return handoff


def reassign_candidates(user: User) -> list[User]:
    """Whom `user` may hand a handoff to: the account's engineers and admins."""
    if not user.is_senior:
        return []
    return list(
        db.session.scalars(
            select(User)
            .where(
                User.account_id == user.account_id,
                User.role.in_(SENIOR_ROLES),
                User.active.is_(True),
            )
            .order_by(User.name, User.id)
        )
    )


def _target(user: User, target_id: int) -> User:
    """An active engineer or admin of the caller's account (another account's id: 404)."""
    target = db.session.scalar(
        select(User).where(User.id == target_id, User.account_id == user.account_id)
    )
    if target is None:
        raise NotFound("No such user.")
    if not target.is_senior:
        raise ValidationFailed(
            "Some fields are invalid.",
            {"user_id": ["The escalation can go only to an engineer or an admin."]},
        )
    return target


def reassign(user: User, handoff_id: int, target_id: int, reason: str | None = None) -> Handoff:
    """Give the claim to another senior of the account; they are told live and by email
    when offline, with the `reason` (kept on the timeline). Reassigning to the current
    holder changes nothing."""
    handoff = get_handoff(user, handoff_id)
    _holder_or_admin(user, handoff, "reassign")
    target = _target(user, target_id)
    holder = handoff.claimed_by
    if holder.id == target.id:
        return handoff
    now = utcnow()
    with transaction():
        done = _update_if_still_held(handoff, holder, claimed_by_id=target.id, claimed_at=now)
        if done:
            outbox.announce(handoff, outbox.HANDOFF_REASSIGNED)
            timeline.record(
                handoff,
                timeline.REASSIGNED,
                user,
                now,
                reason=reason,
                **{"from": timeline.ref(holder), "to": timeline.ref(target)},
            )
    if not done:
        raise _changed_meanwhile(handoff)
    db.session.refresh(handoff)
    return handoff

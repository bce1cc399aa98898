"""Who may do what to a session and its handoff, each rule written once.

The domain's operations refuse by these rules (models/escalations.py, models/handover.py);
the pages ask the same functions which actions to offer, so a button is shown exactly when
the operation behind it would be allowed. The pages' JavaScript restates none of them: the
session page is sent `may` (GET /sessions/<id>, fetched again on each live change of its
handoff) and the queue page `card_actions`, and each applies what it is sent.
"""

from __future__ import annotations

from models.entities import HANDOFF_STATUSES, LIVE_HANDOFF_STATUSES, FlowSession, Handoff, User


def may_escalate(user: User, session: FlowSession) -> bool:
    """The session's technician, or an admin, may escalate it."""
    return session.technician_id == user.id or user.role == "admin"


def can_escalate(user: User, session: FlowSession, handoff: Handoff | None) -> bool:
    """Whether escalating now would create a handoff: allowed, and the session's latest
    handoff (if any) is no longer live (one live handoff per session)."""
    live = handoff is not None and handoff.status in LIVE_HANDOFF_STATUSES
    return may_escalate(user, session) and not live


def may_claim(user: User) -> bool:
    """The account's engineers and admins claim; technicians never do."""
    return user.is_senior


def may_claim_when(user: User, status: str) -> bool:
    """Whether a claim would take a handoff in `status`: allowed, and nobody holds it yet.
    The claim rule needs nothing but the user's role and the handoff's status."""
    return may_claim(user) and status == "open"


def can_claim(user: User, handoff: Handoff | None) -> bool:
    """Whether a claim would take the handoff now."""
    return handoff is not None and may_claim_when(user, handoff.status)


def card_actions(user: User) -> dict[str, dict[str, bool]]:
    """What `user` may do from a queue card, for a handoff in each status. A live event is
    sent once to a whole room, so it cannot say what each listener may do; since the rule
    depends only on the role and the status, a page is told this table once and applies it
    to every card, live ones included."""
    return {status: {"claim": may_claim_when(user, status)} for status in HANDOFF_STATUSES}


def holds_claim_or_admin(user: User, handoff: Handoff) -> bool:
    """The senior who claimed the handoff, or an admin: who may resolve it, release it or
    reassign it (a technician never, whatever the handoff's state)."""
    return user.is_senior and (handoff.claimed_by_id == user.id or user.role == "admin")


def can_resolve(user: User, handoff: Handoff | None) -> bool:
    """Whether resolving would close the handoff now: claimed, by `user` or `user` an admin."""
    return (
        handoff is not None and handoff.status == "claimed" and holds_claim_or_admin(user, handoff)
    )

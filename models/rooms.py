"""Socket.IO room names and who receives which handoff event, defined once.

The web process joins connections to these rooms; the worker emits to them through the
message queue. Rooms are joined server-side only, from the authenticated user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from models.db import db
from models.email_rules import plan_emails
from models.entities import SENIOR_ROLES, Handoff, User
from models.events import (
    HANDOFF_CLAIMED,
    HANDOFF_CREATED,
    HANDOFF_REASSIGNED,
    HANDOFF_RELEASED,
    HANDOFF_REMINDER,
    HANDOFF_RESOLVED,
    HANDOFF_UNCLAIMED,
)
from models.preferences import account_email_preferences
from models.presence import Presence


def seniors_room(account_id: int) -> str:
    """The account's engineers and admins."""
    return f"account:{account_id}:seniors"


def technicians_room(account_id: int) -> str:
    return f"account:{account_id}:technicians"


def user_room(user_id: int) -> str:
    """Every connection of one user (several tabs, several web nodes)."""
    return f"user:{user_id}"


def rooms_of(user: User) -> list[str]:
    """The rooms a connection of `user` joins: its role's room in its own account, and its own."""
    role_room = (
        seniors_room(user.account_id) if user.is_senior else technicians_room(user.account_id)
    )
    return [role_room, user_room(user.id)]


def escalating_technician_id(handoff: Handoff) -> int:
    """The session's technician (an admin may escalate on their behalf)."""
    return handoff.session.technician_id


def recipient_rooms(event: str, handoff: Handoff) -> list[str]:
    """Where a handoff event goes: `handoff.created` to the account's seniors; `claimed` and
    `resolved` to the seniors and the escalating technician."""
    rooms = [seniors_room(handoff.account_id)]
    if event in (HANDOFF_CLAIMED, HANDOFF_RESOLVED, HANDOFF_RELEASED):
        rooms.append(user_room(escalating_technician_id(handoff)))
    elif event == HANDOFF_REASSIGNED:
        # The new holder hears it on their own room too (python-socketio sends once per
        # connection however many of the rooms it is in).
        rooms.append(user_room(escalating_technician_id(handoff)))
        if handoff.claimed_by_id is not None:
            rooms.append(user_room(handoff.claimed_by_id))
    elif event not in (HANDOFF_CREATED, HANDOFF_REMINDER, HANDOFF_UNCLAIMED):
        raise ValueError(f"Not a handoff event: {event!r}")
    return rooms


@dataclass(frozen=True)
class EmailAudience:
    """Who is emailed for a step event: `user_ids`, and whether only those offline."""

    user_ids: list[int]
    offline_only: bool


def step_email_audience(event: str, handoff: Handoff) -> EmailAudience | None:
    """Emails beyond the new-handoff one: a reminder to each offline senior; the admin step
    to every admin, online or not (it is the escalation of last resort); a reassignment to
    its target when offline. None: the event sends no email of this kind."""
    account_id = handoff.account_id
    if event == HANDOFF_REMINDER:
        return EmailAudience(_user_ids(account_id, SENIOR_ROLES), offline_only=True)
    if event == HANDOFF_UNCLAIMED:
        return EmailAudience(_user_ids(account_id, ("admin",)), offline_only=False)
    if event == HANDOFF_REASSIGNED and handoff.claimed_by_id is not None:
        return EmailAudience([handoff.claimed_by_id], offline_only=True)
    return None


def _user_ids(account_id: int, roles: tuple[str, ...]) -> list[int]:
    return list(
        db.session.scalars(
            select(User.id)
            .where(User.account_id == account_id, User.role.in_(roles), User.active.is_(True))
            .order_by(User.id)
        )
    )


def senior_ids(account_id: int) -> list[int]:
    """The ids of the account's engineers and admins: who hears of every handoff."""
    return _user_ids(account_id, SENIOR_ROLES)


def listeners(event: str, handoff: Handoff) -> list[int]:
    """The users who receive `event` when they are connected (recipient_rooms' members)."""
    user_ids = senior_ids(handoff.account_id)
    if event != HANDOFF_CREATED:
        user_ids.append(escalating_technician_id(handoff))
    return user_ids


def seniors_to_email(account_id: int, presence: Presence | None, now: datetime) -> list[int]:
    """The account's seniors to email about a new handoff now: offline (or `always`), never
    `never` nor inside their quiet hours (models.email_rules). Without presence (it could
    not be trusted) everyone counts as offline."""
    preferences = account_email_preferences(account_id, SENIOR_ROLES)
    seniors = [preference.user_id for preference in preferences]
    online = presence.online(seniors) if presence is not None else set()
    return plan_emails(preferences, online, now).now


def not_worth_sending(event: str, handoff: Handoff, recipient_id: int | None) -> str | None:
    """Why a notification of `event` should not go out any more (checked right before each
    send), or None. A reminder or the admin step is news only while the handoff is open and
    unclaimed; a reassignment only while its recipient still holds the claim."""
    if event in (HANDOFF_REMINDER, HANDOFF_UNCLAIMED) and handoff.status != "open":
        return f"Not sent: the escalation was {handoff.status} before this step went out."
    if event == HANDOFF_REASSIGNED and recipient_id is not None:
        if handoff.status != "claimed" or handoff.claimed_by_id != recipient_id:
            return "Not sent: the escalation moved on before this notice went out."
    return None

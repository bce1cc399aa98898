"""Socket.IO room names and who receives which live event, defined once.

The web process joins connections to these rooms; the worker emits to them through the
message queue. Rooms are joined server-side only, from the authenticated user.
"""

from __future__ import annotations

from sqlalchemy import select

from models.db import db
from models.entities import SENIOR_ROLES, FlowSession, Handoff, User
from models.notification_rule import HOLDER_ROOM, SENIORS, SESSION, TECHNICIAN, rule_for


def seniors_room(account_id: int) -> str:
    """The account's engineers and admins."""
    return f"account:{account_id}:seniors"


def technicians_room(account_id: int) -> str:
    return f"account:{account_id}:technicians"


def user_room(user_id: int) -> str:
    """Every connection of one user (several tabs, several web nodes)."""
    return f"user:{user_id}"


def session_room(session_id: int) -> str:
    """The pages showing one session. A connection joins it on `session.watch`, and only
    when its user may see the session (its technician or a senior of its account)."""
    return f"pilot-session:{session_id}"


def rooms_of(user: User) -> list[str]:
    """The rooms a connection of `user` joins: its role's room in its own account, and its own."""
    role_room = (
        seniors_room(user.account_id) if user.is_senior else technicians_room(user.account_id)
    )
    return [role_room, user_room(user.id)]


def escalating_technician_id(handoff: Handoff) -> int:
    """The session's technician (an admin may escalate on their behalf)."""
    return handoff.session.technician_id


def recipient_rooms(
    event: str, handoff: Handoff | None, session_id: int | None = None
) -> list[str]:
    """Where a live event goes: the rooms its rule names (models.notification_rule). A
    handoff event names its handoff; a session's event (chat, writeback) its session."""
    rooms = []
    for kind in rule_for(event).rooms:
        if kind == SESSION and session_id is not None:
            rooms.append(session_room(session_id))
        elif handoff is None:
            continue
        elif kind == SENIORS:
            rooms.append(seniors_room(handoff.account_id))
        elif kind == TECHNICIAN:
            rooms.append(user_room(escalating_technician_id(handoff)))
        elif kind == HOLDER_ROOM and handoff.claimed_by_id is not None:
            # The new holder hears it on their own room too (python-socketio sends once per
            # connection however many of the rooms it is in).
            rooms.append(user_room(handoff.claimed_by_id))
    if not rooms:
        raise ValueError(f"Not a live event of this handoff or session: {event!r}")
    return rooms


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
    if TECHNICIAN in rule_for(event).rooms:
        user_ids.append(escalating_technician_id(handoff))
    return user_ids


def session_listeners(session: FlowSession) -> list[int]:
    """The users who may be in a session's room: the account's seniors and its technician."""
    return [*senior_ids(session.account_id), session.technician_id]

"""Live chat for the session page: `message.created` and `writeback.created` to the
session's room.

A page showing /pilot/<session_id> emits `session.watch` {session_id} after every
(re)connect; the server joins it to the session's room only if the connection's user may see
the session (its technician or a senior of the account). A posted message is emitted to
that room right after it is committed. A page that missed messages while disconnected
re-fetches GET /api/v1/sessions/<id> after reconnecting, so chat needs no outbox.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, request
from flask_socketio import join_room

from models import Message, User, db, tenancy
from models.entities import PsaWriteback
from models.errors import DomainError
from models.sessions import get_session
from web.extensions import socketio

log = logging.getLogger(__name__)

# Ids are 64-bit columns; a larger number would overflow the query, so it is simply unknown.
MAX_ID = 2**63 - 1
MESSAGE_CREATED = "message.created"
WRITEBACK_CREATED = "writeback.created"
WATCH_SESSION = "session.watch"


def pilot_room(session_id: int) -> str:
    return f"pilot-session:{session_id}"


def _socket_user() -> User | None:
    """Who opened this connection: web.realtime checked the token or cookie on connect."""
    connections = current_app.extensions.get("realtime")
    user_id = getattr(connections, "users_by_sid", {}).get(request.sid)
    # A Socket.IO event runs outside the connect handler's context: under row-level
    # security the user's row is visible only once their account is the tenant again.
    tenancy.set_tenant(getattr(connections, "accounts_by_sid", {}).get(request.sid))
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    return user if user is not None and user.active else None


@socketio.on(WATCH_SESSION)
def watch_session(data: Any) -> dict[str, Any]:
    """Join the room of a session the signed-in user may see; the ack says whether it did."""
    session_id = data.get("session_id") if isinstance(data, dict) else None
    if (
        not isinstance(session_id, int)
        or isinstance(session_id, bool)
        or not 0 < session_id <= MAX_ID
    ):
        return {"ok": False, "error": "session_id must be a positive integer."}
    user = _socket_user()
    if user is None:
        return {"ok": False, "error": "Sign in to watch a session."}
    try:
        get_session(user, session_id)
    except DomainError as error:
        return {"ok": False, "error": error.message}
    join_room(pilot_room(session_id))
    return {"ok": True}


def announce_message(message: Message) -> None:
    """Emit a committed chat message to the page(s) showing its session. Never raises:
    a page that misses it catches up from the API when it reconnects."""
    from web.schemas import MessageSchema

    try:
        socketio.emit(
            MESSAGE_CREATED, MessageSchema().dump(message), to=pilot_room(message.session_id)
        )
    except Exception:
        log.warning("Could not emit message %s live", message.id, exc_info=True)


def announce_writeback(writeback: PsaWriteback) -> None:
    """Emit a committed PSA writeback to the page(s) showing its session, like a message."""
    from web.schemas import PsaWritebackSchema

    try:
        socketio.emit(
            WRITEBACK_CREATED,
            PsaWritebackSchema().dump(writeback),
            to=pilot_room(writeback.session_id),
        )
    except Exception:
        log.warning("Could not emit PSA writeback %s live", writeback.id, exc_info=True)

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

from flask_socketio import join_room

from models import Message
from models.entities import PsaWriteback
from models.errors import DomainError
from models.sessions import get_session
from web.extensions import socketio
from web.realtime import connection_user

log = logging.getLogger(__name__)

# Ids are 64-bit columns; a larger number would overflow the query, so it is simply unknown.
MAX_ID = 2**63 - 1
MESSAGE_CREATED = "message.created"
WRITEBACK_CREATED = "writeback.created"
WATCH_SESSION = "session.watch"


def pilot_room(session_id: int) -> str:
    return f"pilot-session:{session_id}"


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
    user = connection_user()
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

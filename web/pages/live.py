"""The session page's room: a page showing /pilot/<session_id> emits `session.watch`
{session_id} after every (re)connect, and the server joins it to the session's room
(models.rooms.session_room) only if the connection's user may see the session (its
technician or a senior of the account).

What the room hears (`message.created`, `writeback.created`) goes through the outbox like
every other live event (models.outbox.announce_message / announce_writeback): emitted by
the web process right after the commit, or by a worker when that emit could not go out.
A page that missed events while disconnected re-fetches GET /api/v1/sessions/<id>.
"""

from __future__ import annotations

from typing import Any

from flask_socketio import join_room

from models.errors import DomainError
from models.rooms import session_room
from models.sessions import get_session
from web.extensions import socketio
from web.realtime import connection_user

# Ids are 64-bit columns; a larger number would overflow the query, so it is simply unknown.
MAX_ID = 2**63 - 1
WATCH_SESSION = "session.watch"


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
    join_room(session_room(session_id))
    return {"ok": True}

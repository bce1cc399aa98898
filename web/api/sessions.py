"""FlowPilot sessions, chat and PSA writebacks."""

from __future__ import annotations

from models import sessions
from web.api.base import ApiBlueprint
from web.auth import authenticated, current_user
from web.schemas import (
    MessageCreateSchema,
    MessageSchema,
    PsaWritebackCreateSchema,
    PsaWritebackSchema,
    SessionCreateSchema,
    SessionDetailSchema,
    SessionSchema,
)

blp = ApiBlueprint("sessions", __name__, description="FlowPilot sessions")


@blp.post("/sessions")
@authenticated
@blp.arguments(SessionCreateSchema)
@blp.response(201, SessionSchema)
@blp.errors(400, 401, 422)
def create_session(body):
    """Start a session; the caller is its technician."""
    return sessions.create_session(current_user(), **body)


@blp.get("/sessions/<id:session_id>")
@authenticated
@blp.response(200, SessionDetailSchema)
@blp.errors(401, 403, 404)
def get_session(session_id: int):
    """The session with its chat (oldest first) and its latest handoff."""
    user = current_user()
    session = sessions.get_session(user, session_id)
    handoff = sessions.latest_handoff(session)
    return {
        **{name: getattr(session, name) for name in SessionSchema().fields},
        "messages": sessions.messages_of(session),
        "writebacks": sessions.writebacks_of(session),
        "handoff": handoff,
        "may": sessions.actions_for(user, session, handoff),
    }


@blp.post("/sessions/<id:session_id>/messages")
@authenticated
@blp.arguments(MessageCreateSchema)
@blp.response(201, MessageSchema)
@blp.errors(400, 401, 403, 404, 409, 422)
def post_message(body, session_id: int):
    """Add a chat message; the claiming senior's first one is the handoff's first action."""
    return sessions.post_message(current_user(), session_id, body["body"])


@blp.post("/sessions/<id:session_id>/psa-writeback")
@authenticated
@blp.arguments(PsaWritebackCreateSchema)
@blp.response(201, PsaWritebackSchema)
@blp.errors(400, 401, 403, 404, 409, 422)
def psa_writeback(body, session_id: int):
    """Write a note back to the PSA ticket (a non-chat action that can be the first action).

    The note is posted to the ticket by a worker; `delivery.status` follows it (pending,
    retrying, sent, failed) or says `not_connected` when the account has no PSA."""
    return sessions.write_back_to_psa(current_user(), session_id, body["note"])

"""Escalations: escalate a session, the seniors' queue, claim, resolve, deliveries."""

from __future__ import annotations

import base64
import binascii
import re

from flask import request

from models import escalations
from web.api import ApiBlueprint
from web.auth import authenticated, current_user, engineer_or_admin
from web.errors import ApiError
from web.schemas import (
    ClaimResultSchema,
    DeliveryListSchema,
    EscalateSchema,
    HandoffListQuerySchema,
    HandoffPageSchema,
    HandoffSchema,
)
from workers.publish import publish_announced

blp = ApiBlueprint("escalations", __name__, description="Escalations (handoffs)")

MAX_IDEMPOTENCY_KEY = 200
# Printable ASCII: what clients send (UUIDs, order numbers) and what every database stores.
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x20-\x7e]+")
IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "Replaying the same key returns the same handoff with 200.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
}


def encode_cursor(after_id: int | None) -> str | None:
    return base64.urlsafe_b64encode(str(after_id).encode()).decode() if after_id else None


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor.encode()).decode()
        if value.isascii() and value.isdigit() and len(value) <= 18:
            return int(value)
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise ApiError(
        422,
        "Some fields are invalid.",
        {"cursor": ["Not a cursor from this API."]},
        code="validation_error",
    )


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise ApiError(
            422,
            "Some fields are invalid.",
            {
                "Idempotency-Key": [
                    f"Must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters."
                ]
            },
            code="validation_error",
        )
    return key


@blp.post("/sessions/<id:session_id>/escalate")
@authenticated
@blp.arguments(EscalateSchema)
@blp.response(201, HandoffSchema)
@blp.alt_response(200, schema=HandoffSchema, description="A replayed Idempotency-Key")
@blp.errors(400, 401, 403, 404, 409, 422)
@blp.doc(parameters=[IDEMPOTENCY_KEY_PARAMETER])
def escalate(body, session_id: int):
    """Escalate a session to the account's seniors. Answers at once; notifications follow."""
    handoff, created = escalations.escalate(
        current_user(), session_id, body["reason"], body["notes"], _idempotency_key()
    )
    publish_announced()
    return handoff, 201 if created else 200


@blp.get("/escalations")
@engineer_or_admin
@blp.arguments(HandoffListQuerySchema, location="query")
@blp.response(200, HandoffPageSchema)
@blp.errors(401, 403, 422)
def list_escalations(query):
    """The account's handoffs, oldest first."""
    items, after_id = escalations.list_handoffs(
        current_user(), query["status"], query["limit"], decode_cursor(query["cursor"])
    )
    return {"items": items, "next_cursor": encode_cursor(after_id)}


@blp.get("/escalations/<id:handoff_id>")
@authenticated
@blp.response(200, HandoffSchema)
@blp.errors(401, 403, 404)
def get_escalation(handoff_id: int):
    return escalations.get_handoff(current_user(), handoff_id)


@blp.post("/escalations/<id:handoff_id>/claim")
@engineer_or_admin
@blp.response(200, ClaimResultSchema)
@blp.errors(401, 403, 404, 409)
def claim(handoff_id: int):
    """Claim an open handoff. Exactly one concurrent claimer wins; the rest get 409."""
    handoff = escalations.claim(current_user(), handoff_id)
    publish_announced()
    return {"handoff": handoff, "redirect_url": f"/pilot/{handoff.session_id}"}


@blp.post("/escalations/<id:handoff_id>/resolve")
@authenticated
@blp.response(200, HandoffSchema)
@blp.errors(401, 403, 404, 409)
def resolve(handoff_id: int):
    """Resolve a claimed handoff (its claimer or an admin)."""
    handoff = escalations.resolve(current_user(), handoff_id)
    publish_announced()
    return handoff


@blp.get("/escalations/<id:handoff_id>/deliveries")
@engineer_or_admin
@blp.response(200, DeliveryListSchema)
@blp.errors(401, 403, 404)
def deliveries(handoff_id: int):
    """How the handoff's notifications went: one row per channel and recipient."""
    return {"items": escalations.deliveries_of(current_user(), handoff_id)}

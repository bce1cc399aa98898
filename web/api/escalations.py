"""Escalations: escalate a session, the seniors' queue, claim, resolve, deliveries."""

from __future__ import annotations

import logging
import re

from flask import request
from marshmallow import ValidationError

from adapters import telemetry
from models import escalations, handover, timeline
from models.logcontext import bind_handoff
from models.queue import QueueFilter, find_handoffs, tab_counts
from web.api.base import ApiBlueprint, parse_json_object
from web.auth import authenticated, current_user, engineer_or_admin
from web.errors import ApiError
from web.pagination import decode_cursor, encode_cursor
from web.schemas import (
    ClaimResultSchema,
    DeliveryListSchema,
    EscalateSchema,
    HandoffCountsQuerySchema,
    HandoffCountsSchema,
    HandoffListQuerySchema,
    HandoffPageSchema,
    HandoffSchema,
    ReassignSchema,
    ReleaseSchema,
    ResolveSchema,
    TimelineSchema,
)

log = logging.getLogger(__name__)

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


def _queue_filter(query: dict, status: str = "all") -> QueueFilter:
    claimed_by = query.get("claimed_by")
    return QueueFilter(
        status=status,
        claimed_by=current_user().id if claimed_by == "me" else int(claimed_by or 0) or None,
        escalated_by=query["escalated_by"],
        priority=query["priority"],
        customer=query["customer"],
        q=query["q"],
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
    bind_handoff(handoff.id)
    if created:
        telemetry.ESCALATIONS_CREATED.inc()
    log.info("Session %s escalated: handoff %s (%s)", session_id, handoff.id,
             "created" if created else "replayed")  # fmt: skip
    return handoff, 201 if created else 200


@blp.get("/escalations")
@engineer_or_admin
@blp.arguments(HandoffListQuerySchema, location="query")
@blp.response(200, HandoffPageSchema)
@blp.errors(401, 403, 422)
def list_escalations(query):
    """The account's handoffs as summaries, oldest first (or by priority, then oldest)."""
    items, position = find_handoffs(
        current_user(),
        _queue_filter(query, query["status"]),
        query["sort"],
        query["limit"],
        decode_cursor(query["cursor"]),
    )
    return {"items": items, "next_cursor": encode_cursor(position)}


@blp.get("/escalations/counts")
@engineer_or_admin
@blp.arguments(HandoffCountsQuerySchema, location="query")
@blp.response(200, HandoffCountsSchema)
@blp.errors(401, 403, 422)
def escalation_counts(query):
    """How many handoffs each queue tab holds under these filters."""
    return tab_counts(current_user(), _queue_filter({**query, "claimed_by": None}))


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
    return {"handoff": handoff, "redirect_url": f"/pilot/{handoff.session_id}"}


RESOLVE_BODY = {"required": False, "content": {"application/json": {"schema": ResolveSchema}}}


def _resolve_body() -> dict:
    """The body is optional here: none at all, or a JSON object `{outcome}`."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        return ResolveSchema().load(parse_json_object(raw))
    except ValidationError as error:
        raise ApiError(
            422, "Some fields are invalid.", error.normalized_messages(), code="validation_error"
        ) from None


@blp.post("/escalations/<id:handoff_id>/resolve")
@authenticated
@blp.response(200, HandoffSchema)
@blp.errors(400, 401, 403, 404, 409, 422)
@blp.doc(requestBody=RESOLVE_BODY)
def resolve(handoff_id: int):
    """Resolve a claimed handoff (its claimer or an admin), with an optional `outcome` note."""
    outcome = (_resolve_body().get("outcome") or "").strip() or None
    handoff = escalations.resolve(current_user(), handoff_id, outcome)
    return handoff


@blp.get("/escalations/<id:handoff_id>/deliveries")
@engineer_or_admin
@blp.response(200, DeliveryListSchema)
@blp.errors(401, 403, 404)
def deliveries(handoff_id: int):
    """How the handoff's notifications went: one row per channel and recipient."""
    return {"items": escalations.deliveries_of(current_user(), handoff_id)}


@blp.post("/escalations/<id:handoff_id>/release")
@engineer_or_admin
@blp.arguments(ReleaseSchema)
@blp.response(200, HandoffSchema)
@blp.errors(400, 401, 403, 404, 409, 422)
def release(body, handoff_id: int):
    """Give a claimed handoff back to the queue (its claimer or an admin), with a reason."""
    handoff = handover.release(current_user(), handoff_id, body["reason"])
    return handoff


@blp.post("/escalations/<id:handoff_id>/reassign")
@engineer_or_admin
@blp.arguments(ReassignSchema)
@blp.response(200, HandoffSchema)
@blp.errors(400, 401, 403, 404, 409, 422)
def reassign(body, handoff_id: int):
    """Hand a claimed handoff to another engineer or admin of the account."""
    handoff = handover.reassign(current_user(), handoff_id, body["user_id"], body.get("reason"))
    return handoff


@blp.get("/escalations/<id:handoff_id>/timeline")
@authenticated
@blp.response(200, TimelineSchema)
@blp.errors(401, 403, 404)
def handoff_timeline(handoff_id: int):
    """What happened to the handoff, oldest first: changes with their actor, and every
    notification with its channel, recipient and state."""
    handoff = escalations.get_handoff(current_user(), handoff_id)
    return {"items": timeline.timeline_of(handoff)}

"""How a handoff, a chat message and a PSA writeback look from outside (API responses and
Socket.IO events), defined once.

The web edge answers with these schemas and the live events carry the same shape, whether
the web process or a worker emits them.
"""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, fields, pre_dump

from models.summaries import handoff_summary


class UtcDateTime(fields.DateTime):
    """Timestamps are stored as naive UTC; the API shows them as ISO 8601 with a Z."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Ref(Schema):
    id = fields.Integer()
    name = fields.String()


class HandoffSchema(Schema):
    id = fields.Integer()
    session_id = fields.Integer()
    status = fields.String()
    title = fields.String()
    reason = fields.String()
    escalated_by = fields.Nested(Ref)
    escalation_package = fields.Dict()
    created_at = UtcDateTime()
    claimed_by = fields.Nested(Ref, allow_none=True)
    claimed_at = UtcDateTime(allow_none=True)
    resolved_at = UtcDateTime(allow_none=True)
    outcome = fields.String(allow_none=True)
    first_action_at = UtcDateTime(allow_none=True)
    first_action_kind = fields.String(allow_none=True)
    first_action_by = fields.Nested(Ref, allow_none=True)
    time_to_first_action_seconds = fields.Float(allow_none=True)
    reminders_sent = fields.Integer()
    escalated_to_admins_at = UtcDateTime(allow_none=True)


class HandoffSummarySchema(Schema):
    """A handoff without its escalation package, at most 4 KB: list items and events."""

    id = fields.Integer()
    session_id = fields.Integer()
    status = fields.String()
    title = fields.String()
    reason = fields.String()
    escalated_by = fields.Nested(Ref)
    created_at = UtcDateTime()
    claimed_by = fields.Nested(Ref, allow_none=True)
    claimed_at = UtcDateTime(allow_none=True)
    resolved_at = UtcDateTime(allow_none=True)
    ai_summary = fields.String(allow_none=True, metadata={"maxLength": 500})
    ai_confidence = fields.Float(allow_none=True, metadata={"description": "0 to 1"})
    steps_tried = fields.List(fields.String(), metadata={"description": "the last few"})
    customer = fields.String(allow_none=True)
    priority = fields.String()
    priority_label = fields.String(
        allow_none=True, metadata={"description": "The priority in words: P1 · critical"}
    )
    psa_ticket_id = fields.String(allow_none=True)
    reminders_sent = fields.Integer()
    escalated_to_admins_at = UtcDateTime(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={"maxLength": 500})

    @pre_dump
    def summarize(self, handoff, **kwargs):
        return handoff if isinstance(handoff, dict) else handoff_summary(handoff)


class MessageSchema(Schema):
    id = fields.Integer()
    session_id = fields.Integer()
    author = fields.Nested(Ref)
    body = fields.String()
    created_at = UtcDateTime()


class PsaDeliveryStateSchema(Schema):
    status = fields.String()  # not_connected | pending | sent | retrying | failed
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    psa_note_id = fields.String(allow_none=True)


class PsaWritebackSchema(Schema):
    id = fields.Integer()
    session_id = fields.Integer()
    author = fields.Nested(Ref)
    note = fields.String()
    created_at = UtcDateTime()
    delivery = fields.Method("_delivery")

    def _delivery(self, writeback) -> dict:
        row = writeback.delivery
        if row is None:
            state = {"status": "not_connected", "attempts": 0, "last_error": None}
        else:
            state = {"status": row.status, "attempts": row.attempts, "last_error": row.last_error}
        return PsaDeliveryStateSchema().dump({**state, "psa_note_id": writeback.psa_note_id})


# One instance each, reused: building a schema (and its nested ones) costs more than a dump.
_EVENT_SCHEMA = HandoffSummarySchema()
_MESSAGE_SCHEMA = MessageSchema()
_WRITEBACK_SCHEMA = PsaWritebackSchema()


def event_payload(handoff) -> dict:
    """What a handoff event carries to its listeners: the bounded summary (at most 4 KB),
    never the escalation package."""
    return _EVENT_SCHEMA.dump(handoff)


def message_payload(message) -> dict:
    """What `message.created` carries: the message as `POST /sessions/<id>/messages`
    answers it."""
    return _MESSAGE_SCHEMA.dump(message)


def writeback_payload(writeback) -> dict:
    """What `writeback.created` carries: the writeback as `POST /sessions/<id>/psa-writeback`
    answers it (its delivery's state at the commit)."""
    return _WRITEBACK_SCHEMA.dump(writeback)

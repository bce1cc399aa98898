"""How a handoff looks from outside (API responses and Socket.IO events), defined once.

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


# One instance, reused: building a schema (and its nested ones) costs more than a dump.
_EVENT_SCHEMA = HandoffSummarySchema()


def event_payload(handoff) -> dict:
    """What a handoff event carries to its listeners: the bounded summary (at most 4 KB),
    never the escalation package."""
    return _EVENT_SCHEMA.dump(handoff)

"""marshmallow schemas: what the API accepts and what it returns (and the OpenAPI document)."""

from __future__ import annotations

import json
from datetime import UTC

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from models.entities import HANDOFF_STATUSES, ROLES

MAX_JSON_DOCUMENT_BYTES = 256 * 1024


class UtcDateTime(fields.DateTime):
    """Timestamps are stored as naive UTC; the API shows them as ISO 8601 with a Z."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Text(fields.String):
    """A trimmed, non-blank string with a maximum length."""

    def __init__(self, max_length: int, **kwargs):
        # The pattern documents "not blank" in the OpenAPI document; _deserialize enforces it.
        metadata = {"pattern": r"\S", **kwargs.pop("metadata", {})}
        super().__init__(
            validate=validate.Length(min=1, max=max_length), metadata=metadata, **kwargs
        )

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            raise ValidationError("Must not be blank.")
        return text


class JsonObject(fields.Dict):
    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if len(json.dumps(result)) > MAX_JSON_DOCUMENT_BYTES:
            raise ValidationError(f"Must be at most {MAX_JSON_DOCUMENT_BYTES} bytes of JSON.")
        return result


class Input(Schema):
    class Meta:
        unknown = EXCLUDE


# --- users and accounts ---


class Ref(Schema):
    id = fields.Integer()
    name = fields.String()


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String()
    email = fields.String()
    role = fields.String()


class UserCreateSchema(Input):
    name = Text(200, required=True)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = fields.String(load_default=None, validate=validate.Length(min=8, max=128))


class UserCreatedSchema(Schema):
    user = fields.Nested(UserSchema)
    token = fields.String()


class AccountSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    timezone = fields.String()
    manual_baseline_minutes = fields.Integer()
    renotify_after_minutes = fields.Integer(allow_none=True)
    renotify_max = fields.Integer()
    escalate_to_admins_after_minutes = fields.Integer(allow_none=True)


class MeSchema(UserSchema):
    account = fields.Nested(AccountSchema)


class AccountPatchSchema(Input):
    manual_baseline_minutes = fields.Integer(
        strict=True, validate=validate.Range(min=0, max=100_000)
    )
    timezone = fields.String(validate=validate.Length(min=1, max=64))
    renotify_after_minutes = fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=240),
        metadata={"description": "Remind the seniors after this many minutes; null: never."},
    )
    renotify_max = fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=10),
        metadata={"description": "How many reminders at most."},
    )
    escalate_to_admins_after_minutes = fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=1440),
        metadata={"description": "Tell every admin after this many minutes; null: never."},
    )


POLICY_FIELDS = ("renotify_after_minutes", "renotify_max", "escalate_to_admins_after_minutes")


# --- sessions ---


class SessionCreateSchema(Input):
    title = Text(200, required=True)
    snapshot = JsonObject(required=True)
    ai_assessment = JsonObject(load_default=None, allow_none=True)


class SessionSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    status = fields.String()
    technician = fields.Nested(Ref)
    snapshot = fields.Dict()
    ai_assessment = fields.Dict()
    created_at = UtcDateTime()


class MessageCreateSchema(Input):
    body = Text(10_000, required=True)


class MessageSchema(Schema):
    id = fields.Integer()
    session_id = fields.Integer()
    author = fields.Nested(Ref)
    body = fields.String()
    created_at = UtcDateTime()


class PsaWritebackCreateSchema(Input):
    note = Text(10_000, required=True)


class PsaWritebackSchema(Schema):
    id = fields.Integer()
    session_id = fields.Integer()
    author = fields.Nested(Ref)
    note = fields.String()
    created_at = UtcDateTime()


# --- escalations ---


class EscalateSchema(Input):
    reason = Text(2_000, required=True)
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10_000))


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
    first_action_at = UtcDateTime(allow_none=True)
    first_action_kind = fields.String(allow_none=True)
    time_to_first_action_seconds = fields.Float(allow_none=True)
    reminders_sent = fields.Integer()
    escalated_to_admins_at = UtcDateTime(allow_none=True)


class SessionDetailSchema(SessionSchema):
    messages = fields.List(fields.Nested(MessageSchema))
    handoff = fields.Nested(HandoffSchema, allow_none=True)


class HandoffListQuerySchema(Input):
    status = fields.String(load_default="open", validate=validate.OneOf((*HANDOFF_STATUSES, "all")))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, validate=validate.Length(max=64))


class HandoffPageSchema(Schema):
    items = fields.List(fields.Nested(HandoffSchema))
    next_cursor = fields.String(allow_none=True)


class ClaimResultSchema(Schema):
    handoff = fields.Nested(HandoffSchema)
    redirect_url = fields.String()


class ReleaseSchema(Input):
    reason = Text(2_000, required=True)


class ReassignSchema(Input):
    user_id = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=2**63 - 1)
    )


class TimelineItemSchema(Schema):
    at = UtcDateTime()
    kind = fields.String()
    actor = fields.Nested(Ref, allow_none=True)
    details = fields.Dict()


class TimelineSchema(Schema):
    items = fields.List(fields.Nested(TimelineItemSchema))


class RecipientSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    email = fields.String()


class DeliverySchema(Schema):
    id = fields.Integer()
    channel = fields.String()
    event = fields.String()
    recipient = fields.Nested(RecipientSchema, allow_none=True)
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    next_attempt_at = UtcDateTime(allow_none=True)
    sent_at = UtcDateTime(allow_none=True)


class DeliveryListSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema))


# --- errors (documented in the OpenAPI document) ---


class ErrorBodySchema(Schema):
    code = fields.String()
    message = fields.String()
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema)

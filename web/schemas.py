"""marshmallow schemas: what the API accepts and what it returns (and the OpenAPI document)."""

from __future__ import annotations

import json
import re
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


class AsciiInteger(fields.Integer):
    """An integer written in ASCII digits only: "١" or "+5" is not a number here."""

    def _validated(self, value):
        if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
            raise self.make_error("invalid")
        return super()._validated(value)


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


class MeSchema(UserSchema):
    account = fields.Nested(AccountSchema)


class AccountPatchSchema(Input):
    manual_baseline_minutes = fields.Integer(
        strict=True, validate=validate.Range(min=0, max=100_000)
    )
    timezone = fields.String(validate=validate.Length(min=1, max=64))


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


class SessionDetailSchema(SessionSchema):
    messages = fields.List(fields.Nested(MessageSchema))
    handoff = fields.Nested(HandoffSchema, allow_none=True)


class HandoffListQuerySchema(Input):
    status = fields.String(load_default="open", validate=validate.OneOf((*HANDOFF_STATUSES, "all")))
    limit = AsciiInteger(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, validate=validate.Length(max=64))


class HandoffPageSchema(Schema):
    items = fields.List(fields.Nested(HandoffSchema))
    next_cursor = fields.String(allow_none=True)


class ClaimResultSchema(Schema):
    handoff = fields.Nested(HandoffSchema)
    redirect_url = fields.String()


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


# --- credentials and the security log ---


class UserAdminSchema(UserSchema):
    active = fields.Boolean()


class UserListSchema(Schema):
    items = fields.List(fields.Nested(UserAdminSchema))


class UserPatchSchema(Input):
    role = fields.String(validate=validate.OneOf(ROLES))
    active = fields.Boolean(truthy={True}, falsy={False})


class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String(allow_none=True)
    created_at = UtcDateTime()
    expires_at = UtcDateTime(allow_none=True)
    last_used_at = UtcDateTime(allow_none=True)


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema))


class TokenListQuerySchema(Input):
    user_id = AsciiInteger(validate=validate.Range(min=1, max=2**63 - 1))


class TokenCreateSchema(Input):
    name = Text(100, required=True)
    expires_in_days = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1, max=3650)
    )


class TokenCreatedSchema(Schema):
    token = fields.Nested(TokenSchema)
    secret = fields.String()


class SecurityEventSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    actor = fields.Nested(Ref, allow_none=True)
    subject = fields.Nested(Ref, allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    details = fields.Dict()
    created_at = UtcDateTime()


class SecurityLogQuerySchema(Input):
    limit = AsciiInteger(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, validate=validate.Length(max=64))


class SecurityLogPageSchema(Schema):
    items = fields.List(fields.Nested(SecurityEventSchema))
    next_cursor = fields.String(allow_none=True)

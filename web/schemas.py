"""marshmallow schemas: what the API accepts and what it returns (and the OpenAPI document)."""

from __future__ import annotations

import dataclasses
import json
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from adapters.psa import default_connector as PSA_CONNECTORS
from models import handoff_steps
from models.entities import DEFAULT_PRIORITY, NOTIFY_EMAIL_CHOICES, PRIORITIES, ROLES
from models.psa.base import ConnectorField
from models.queue import MAX_SEARCH_CHARS, SORTS, STATUS_FILTERS
from models.representations import (
    HandoffSchema,
    HandoffSummarySchema,
    MessageSchema,
    PsaWritebackSchema,
    Ref,
    UtcDateTime,
)

MAX_JSON_DOCUMENT_BYTES = 256 * 1024


class Limit(validate.Length):
    """A length limit whose message says the limit and how long the value was: an
    over-long field is refused with its limit (422), never cut to fit."""

    def __init__(self, min: int | None = None, max: int | None = None) -> None:  # noqa: A002
        super().__init__(min=min, max=max)

    def __call__(self, value):
        length = len(value)
        if self.max is not None and length > self.max:
            raise ValidationError(f"At most {self.max} characters; this one has {length}.")
        if self.min is not None and length < self.min:
            raise ValidationError(
                "Must not be empty." if self.min == 1 else f"At least {self.min} characters."
            )
        return value


class Text(fields.String):
    """A trimmed, non-blank string with a maximum length."""

    def __init__(self, max_length: int, **kwargs):
        # The pattern documents "not blank" in the OpenAPI document; _deserialize enforces it.
        metadata = {"pattern": r"\S", **kwargs.pop("metadata", {})}
        super().__init__(validate=Limit(min=1, max=max_length), metadata=metadata, **kwargs)

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


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String()
    email = fields.String()
    role = fields.String()


class UserCreateSchema(Input):
    name = Text(200, required=True)
    email = fields.Email(required=True, validate=Limit(max=254))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = fields.String(load_default=None, validate=Limit(min=8, max=128))


class UserCreatedSchema(Schema):
    user = fields.Nested(UserSchema)
    token = fields.String()


class AccountSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    timezone = fields.String()
    manual_baseline_minutes = fields.Integer()
    baseline_is_set = fields.Boolean()
    renotify_after_minutes = fields.Integer(allow_none=True)
    renotify_max = fields.Integer()
    escalate_to_admins_after_minutes = fields.Integer(allow_none=True)
    policy_by_priority = fields.Method(
        "_policy_by_priority",
        metadata={
            "type": "object",
            "description": "Per priority, the policy fields that differ from the account-wide "
            "ones; a priority without an entry uses those.",
        },
    )
    effective_policy_by_priority = fields.Method(
        "_effective_policy_by_priority",
        metadata={"type": "object", "description": "What each priority runs, every field."},
    )
    business_hours = fields.Raw(
        allow_none=True,
        metadata={
            "type": "object",
            "description": 'Weekly windows {day: "mon"…"sun", start, end} and holidays '
            "(YYYY-MM-DD) in the account's time zone; null: always inside.",
        },
    )

    def _policy_by_priority(self, account):
        return handoff_steps.policy_by_priority(account)

    def _effective_policy_by_priority(self, account):
        return {
            priority: dataclasses.asdict(policy)
            for priority, policy in handoff_steps.effective_policies(account).items()
        }


HH_MM = r"([01]\d|2[0-3]):[0-5]\d\Z"


class QuietHoursSchema(Schema):
    start = fields.String(metadata={"pattern": HH_MM, "example": "22:00"})
    end = fields.String(metadata={"pattern": HH_MM, "example": "07:00"})


class QuietHours(fields.Field):
    """{start: "HH:MM", end: "HH:MM"} (24-hour, the user's time zone), one flat message."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict) or set(value) != {"start", "end"}:
            raise ValidationError('Must be {"start": "HH:MM", "end": "HH:MM"} or null.')
        for key in ("start", "end"):
            if not isinstance(value[key], str) or not re.match(HH_MM, value[key]):
                raise ValidationError(f"{key} must be HH:MM (24-hour).")
        return {"start": value["start"], "end": value["end"]}


class MeSchema(UserSchema):
    account = fields.Nested(AccountSchema)
    notify_email = fields.String()
    quiet_hours = fields.Nested(QuietHoursSchema, allow_none=True)
    timezone = fields.String(allow_none=True, metadata={"description": "null: the account's"})


class MePatchSchema(Input):
    """Unset keys stay as they are; quiet_hours null turns quiet hours off."""

    notify_email = fields.String(validate=validate.OneOf(NOTIFY_EMAIL_CHOICES))
    quiet_hours = QuietHours(allow_none=True, metadata={"type": "object"})
    timezone = fields.String(allow_none=True, validate=Limit(min=1, max=64))


class AccountPatchSchema(Input):
    manual_baseline_minutes = fields.Integer(
        strict=True, validate=validate.Range(min=0, max=100_000)
    )
    timezone = fields.String(validate=Limit(min=1, max=64))
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
    # Checked in the domain (models.handoff_steps.validate_policy_by_priority), so the
    # settings page and the API give the same messages.
    policy_by_priority = fields.Raw(
        allow_none=True,
        metadata={
            "type": "object",
            "description": 'Per priority ("p1"…"p4") the policy fields that differ from the '
            "account-wide ones; replaces the previous entries; null: the defaults.",
        },
    )
    # Checked in the domain (models.oncall.validate_business_hours).
    business_hours = fields.Raw(
        allow_none=True,
        metadata={
            "type": "object",
            "description": 'Weekly windows {day: "mon"…"sun", start: "HH:MM", end: "HH:MM" '
            'or "24:00"} and holidays ["YYYY-MM-DD"] in the account\'s time zone; null: '
            "always inside business hours; windows [] never.",
        },
    )


POLICY_FIELDS = handoff_steps.POLICY_FIELDS


# --- sessions ---


class SessionCreateSchema(Input):
    title = Text(200, required=True)
    snapshot = JsonObject(required=True)
    ai_assessment = JsonObject(load_default=None, allow_none=True)
    customer = fields.String(load_default=None, allow_none=True, validate=Limit(max=200))
    priority = fields.String(load_default=DEFAULT_PRIORITY, validate=validate.OneOf(PRIORITIES))
    psa_ticket_id = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9._-]{1,64}$", error="A ticket id: 1-64 letters, digits, . _ or -."
        ),
    )


class SessionSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    status = fields.String()
    technician = fields.Nested(Ref)
    snapshot = fields.Dict()
    ai_assessment = fields.Dict()
    created_at = UtcDateTime()
    customer = fields.String(allow_none=True)
    priority = fields.String()
    psa_ticket_id = fields.String(allow_none=True)


class MessageCreateSchema(Input):
    body = Text(10_000, required=True)


class PsaWritebackCreateSchema(Input):
    note = Text(10_000, required=True)


class PsaWritebackListSchema(Schema):
    items = fields.List(fields.Nested(PsaWritebackSchema))


def _psa_fields() -> dict[str, ConnectorField]:
    """Every connector's fields by name (the longest limit where two PSAs share a name)."""
    found: dict[str, ConnectorField] = {}
    for spec in PSA_CONNECTORS.specs.values():
        for field in spec.fields:
            if field.name not in found or field.max_length > found[field.name].max_length:
                found[field.name] = field
    return found


def _psa_input_schema(name: str, doc: str, **extra: fields.Field) -> type[Schema]:
    """`kind` plus every connector's fields, as the connectors declare them; which of them
    a kind requires is checked by the domain (models.psa.connection), also as 422."""
    kinds = list(PSA_CONNECTORS.kinds)
    attributes: dict = {
        "__doc__": doc,
        "kind": fields.String(load_default=kinds[0], validate=validate.OneOf(kinds)),
    }
    for field in _psa_fields().values():
        attributes[field.name] = fields.String(
            validate=Limit(max=field.max_length), metadata={"description": field.label}
        )
    return type(name, (Input,), {**attributes, **extra})


PsaConnectionInputSchema = _psa_input_schema(
    "PsaConnectionInputSchema",
    "The fields of the chosen `kind` (see each PSA's form); for a PSA that calls back,"
    " `verify_callback_signatures` false only for a server that does not sign"
    " (security-logged).",
    verify_callback_signatures=fields.Boolean(load_default=True),
)
PsaConnectionTestInputSchema = _psa_input_schema(
    "PsaConnectionTestInputSchema", "All optional: without fields, the saved connection is tested."
)


def _psa_connection_schema() -> type[Schema]:
    answered = {name for spec in PSA_CONNECTORS.specs.values() for name in spec.answered}
    attributes: dict = {
        "__doc__": "A PSA connection: its kind's answered fields, never a secret.",
        "kind": fields.String(allow_none=True),  # null: no PSA is connected
        "status": fields.String(),  # connected | broken | not_connected
        "message": fields.String(allow_none=True),
        "callback_url": fields.String(allow_none=True),  # null: polled only
        "verify_callback_signatures": fields.Boolean(),  # only for a PSA that calls back
    }
    for name in sorted(answered):
        attributes[name] = fields.String(allow_none=True)
    return type("PsaConnectionSchema", (Schema,), attributes)


PsaConnectionSchema = _psa_connection_schema()


class PsaMemberLinkInputSchema(Input):
    psa_member = Text(100, required=True)
    email = Text(254, required=True)


class PsaMemberLinkSchema(Schema):
    psa_member = fields.String()
    user = fields.Nested(lambda: RecipientSchema())


class PsaMemberLinkListSchema(Schema):
    items = fields.List(fields.Nested(PsaMemberLinkSchema))


class PsaTestResultSchema(Schema):
    ok = fields.Boolean()
    message = fields.String()


# --- escalations ---


class EscalateSchema(Input):
    reason = Text(2_000, required=True)
    notes = fields.String(load_default=None, allow_none=True, validate=Limit(max=10_000))


class ResolveSchema(Input):
    outcome = fields.String(load_default=None, allow_none=True, validate=Limit(max=10_000))


class SessionDetailSchema(SessionSchema):
    messages = fields.List(fields.Nested(MessageSchema))
    writebacks = fields.List(fields.Nested(PsaWritebackSchema))
    handoff = fields.Nested(HandoffSchema, allow_none=True)
    may = fields.Dict(
        metadata={
            "description": "What the caller may do now: claim, resolve, release, reassign, "
            "escalate, write (and read_only_reason when not)."
        }
    )


USER_ID_OR_ME = r"(me|\d{1,18})\Z"


class HandoffListQuerySchema(Input):
    status = fields.String(load_default="open", validate=validate.OneOf(STATUS_FILTERS))
    limit = AsciiInteger(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, validate=Limit(max=64))
    claimed_by = fields.String(
        load_default=None,
        validate=validate.Regexp(USER_ID_OR_ME, error="Must be me or a user id."),
    )
    escalated_by = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**62))
    priority = fields.String(load_default=None, validate=validate.OneOf(PRIORITIES))
    customer = fields.String(load_default=None, validate=Limit(max=200))
    q = fields.String(load_default=None, validate=Limit(max=MAX_SEARCH_CHARS))
    sort = fields.String(load_default="oldest", validate=validate.OneOf(SORTS))


class HandoffCountsQuerySchema(Input):
    escalated_by = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**62))
    priority = fields.String(load_default=None, validate=validate.OneOf(PRIORITIES))
    customer = fields.String(load_default=None, validate=Limit(max=200))
    q = fields.String(load_default=None, validate=Limit(max=MAX_SEARCH_CHARS))


class HandoffCountsSchema(Schema):
    unclaimed = fields.Integer()
    mine = fields.Integer()
    claimed = fields.Integer()
    resolved = fields.Integer()


class HandoffPageSchema(Schema):
    items = fields.List(fields.Nested(HandoffSummarySchema))
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
    reason = Text(
        2_000,
        load_default=None,
        allow_none=True,
        metadata={"description": "Why it goes to them: they read it in the announcement."},
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
    # Email only: why it went (models.notification_rule.REASONS), and until when quiet
    # hours hold it (status `held`).
    reason = fields.String(allow_none=True)
    held_until = UtcDateTime(allow_none=True)


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
    cursor = fields.String(load_default=None, validate=Limit(max=64))


class SecurityLogPageSchema(Schema):
    items = fields.List(fields.Nested(SecurityEventSchema))
    next_cursor = fields.String(allow_none=True)

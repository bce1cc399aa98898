"""Analytics: the owner's "minutes recovered per escalation", served from the monthly rollup."""

from __future__ import annotations

from flask import jsonify
from marshmallow import Schema, ValidationError, fields, validate

from models import rollup
from models.errors import ValidationFailed
from web.api import ApiBlueprint
from web.auth import current_user, engineer_or_admin
from web.schemas import AsciiInteger, Input, UtcDateTime

blp = ApiBlueprint("analytics", __name__, description="Escalation metrics")

MAX_HISTORY_MONTHS = 36


class MonthField(fields.String):
    """`YYYY-MM`, loaded as a rollup.Month."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return rollup.Month.parse(text)
        except ValidationFailed as error:
            raise ValidationError(error.details["month"]) from error


class MetricsQuerySchema(Input):
    month = MonthField(
        load_default=None,
        metadata={
            "description": "YYYY-MM; default the current month in the account's time zone. "
            "With `months`, the newest month of the history."
        },
    )
    months = AsciiInteger(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_HISTORY_MONTHS),
        metadata={"description": "Return the last N months, newest first, as `items`."},
    )


class EscalationMetricsSchema(Schema):
    month = fields.String()
    escalations = fields.Integer()
    first_actions = fields.Integer()
    avg_time_to_first_action_minutes = fields.Float(allow_none=True)
    manual_baseline_minutes = fields.Integer()
    minutes_recovered_per_escalation = fields.Float(allow_none=True)
    computed_at = UtcDateTime(
        allow_none=True,
        metadata={"description": "When the rollup wrote these figures; null: not rolled up yet."},
    )


class EscalationMetricsHistorySchema(Schema):
    items = fields.List(fields.Nested(EscalationMetricsSchema))


@blp.get("/analytics/escalation-metrics")
@engineer_or_admin
@blp.arguments(MetricsQuerySchema, location="query")
@blp.response(200, EscalationMetricsSchema)
@blp.errors(401, 403, 422)
@blp.doc(
    responses={
        "200": {
            "description": "One month; with `months`, `{items: [...]}` newest first",
            "content": {
                "application/json": {
                    "schema": {"oneOf": [EscalationMetricsSchema, EscalationMetricsHistorySchema]}
                }
            },
        }
    }
)
def escalation_metrics(query):
    """Minutes recovered per escalation for a month (default: the current one), or with
    `months=N` the last N months newest first. Figures come from the scheduled rollup."""
    account = current_user().account
    newest = query["month"] or rollup.current_month(account)
    if query["months"] is None:
        (metrics,) = rollup.metrics_for(account, [newest])
        return metrics
    months = rollup.recent_months(newest, query["months"])
    history = rollup.metrics_for(account, months)
    # One route, two shapes: the history is serialized here and passes through as is.
    return jsonify(EscalationMetricsHistorySchema().dump({"items": history}))

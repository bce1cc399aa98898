"""Analytics: the owner's "minutes recovered per escalation", served from the monthly rollup."""

from __future__ import annotations

from flask import jsonify
from marshmallow import Schema, ValidationError, fields, validate

from models import rollup
from models.errors import ValidationFailed
from web.api.base import ApiBlueprint
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
    avg_time_to_claim_minutes = fields.Float(
        allow_none=True,
        metadata={"description": "Handoffs first claimed in the month: minutes to that claim."},
    )
    escalated_to_admins = fields.Integer(
        metadata={"description": "Handoffs that reached the admin step in the month."}
    )
    computed_at = UtcDateTime(
        allow_none=True,
        metadata={"description": "When the rollup wrote these figures; null: not rolled up yet."},
    )


class EngineerMetricsSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    first_actions = fields.Integer(metadata={"description": "The sample size of the figures."})
    avg_time_to_first_action_minutes = fields.Float(allow_none=True)
    median_time_to_first_action_minutes = fields.Float(allow_none=True)
    minutes_recovered_per_escalation = fields.Float(allow_none=True)


class EscalationMetricsDetailSchema(EscalationMetricsSchema):
    """One month, with the spread read from the handoffs beside the rolled-up figures."""

    time_to_first_action_sample_size = fields.Integer(
        metadata={"description": "First actions behind the median and p90 (read now)."}
    )
    median_time_to_first_action_minutes = fields.Float(allow_none=True)
    p90_time_to_first_action_minutes = fields.Float(allow_none=True)
    hours_recovered = fields.Float(
        allow_none=True,
        metadata={"description": "Baseline minus TTFA, summed over the month's first actions."},
    )
    baseline_is_default = fields.Boolean(
        metadata={"description": "True while nobody has set the account's baseline."}
    )
    engineers = fields.List(fields.Nested(EngineerMetricsSchema))


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60.0, rollup.DECIMALS)


def month_detail(account, metrics: rollup.MonthlyMetrics) -> dict:
    """The rolled-up figures of one month plus its distribution (models.rollup)."""
    spread = rollup.month_distribution(account, rollup.Month.parse(metrics.month))
    return {
        **{name: getattr(metrics, name) for name in EscalationMetricsSchema().fields},
        "time_to_first_action_sample_size": spread.ttfa.count,
        "median_time_to_first_action_minutes": _minutes(spread.ttfa.median_seconds),
        "p90_time_to_first_action_minutes": _minutes(spread.ttfa.p90_seconds),
        "hours_recovered": spread.hours_recovered,
        "baseline_is_default": not account.baseline_is_set,
        "engineers": [
            {
                "id": engineer.user_id,
                "name": engineer.name,
                "first_actions": engineer.ttfa.count,
                "avg_time_to_first_action_minutes": _minutes(engineer.ttfa.mean_seconds),
                "median_time_to_first_action_minutes": _minutes(engineer.ttfa.median_seconds),
                "minutes_recovered_per_escalation": engineer.minutes_recovered_per_escalation,
            }
            for engineer in spread.engineers
        ],
    }


class EscalationMetricsHistorySchema(Schema):
    items = fields.List(fields.Nested(EscalationMetricsSchema))


@blp.get("/analytics/escalation-metrics")
@engineer_or_admin
@blp.arguments(MetricsQuerySchema, location="query")
@blp.response(200, EscalationMetricsDetailSchema)
@blp.errors(401, 403, 422)
@blp.doc(
    responses={
        "200": {
            "description": "One month; with `months`, `{items: [...]}` newest first",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [EscalationMetricsDetailSchema, EscalationMetricsHistorySchema]
                    }
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
        return month_detail(account, metrics)
    months = rollup.recent_months(newest, query["months"])
    history = rollup.metrics_for(account, months)
    # One route, two shapes: the history is serialized here and passes through as is.
    return jsonify(EscalationMetricsHistorySchema().dump({"items": history}))

"""The emails of one dispatched event: the notification rule's table and decision
(models.notification_rule) applied to the account as it is now, with the schedule resolved
once for the whole dispatch. Creates the delivery rows; the caller enqueues the sends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from models import deliveries
from models.db import utcnow
from models.entities import Delivery, Handoff, OutboxEvent
from models.handoff_steps import step_of_event
from models.notification_rule import (
    EMAILED_BEFORE,
    HOLDER,
    Audience,
    Chosen,
    choose,
    keyed_by_step,
    rule_for,
)
from models.schedule_cache import decision_inputs

# Who of these users has an open connection (adapters.presence.Presence.online).
OnlineOf = Callable[[list[int]], set[int]]


def now_utc() -> datetime:
    """The service's clock (models.db.utcnow), aware."""
    return utcnow().replace(tzinfo=UTC)


def _targets(audience: str, event: OutboxEvent, handoff: Handoff) -> dict[int, str | None] | None:
    if audience == HOLDER:
        return {handoff.claimed_by_id: None} if handoff.claimed_by_id is not None else {}
    if audience == EMAILED_BEFORE:
        first = deliveries.first_email_reasons(handoff.id)
        first.pop(handoff.claimed_by_id, None)  # the claimer knows
        return first
    return None


def decide(
    event: OutboxEvent,
    handoff: Handoff,
    online_of: OnlineOf | None,
    fallback: bool = False,
    at: datetime | None = None,
) -> tuple[Chosen, str | None] | None:
    """Who is emailed about `event` now and why, and the unclaimed step it announced (its
    deliveries' key); None when it emails nobody. The seniors' preferences and the schedule
    resolved once for them all (models.schedule_cache: one query while its copy holds),
    and one presence look-up."""
    email = rule_for(event.event).email
    if email is None:
        return None
    step = step_of_event(event.id) if keyed_by_step(event.event) else None
    if keyed_by_step(event.event) and step is None:
        return None
    seniors, moment = decision_inputs(event.account_id, at or now_utc())
    targets = _targets(email.audience, event, handoff)
    asked = [p.user_id for p in seniors if targets is None or p.user_id in targets]
    needs_presence = online_of is not None and email.by_preferences is not False
    online = online_of(asked) if needs_presence else set()
    return choose(event.event, Audience(seniors, online, targets), moment, fallback), step


def plan_event_emails(
    event: OutboxEvent,
    handoff: Handoff,
    online_of: OnlineOf | None,
    fallback: bool = False,
) -> list[Delivery]:
    """The email deliveries of `event` (created once, however often this runs). `online_of`
    None: presence could not be trusted, everyone counts as offline. `fallback`: the live
    event never went out, so the rule runs as if every senior were offline."""
    decided = decide(event, handoff, online_of, fallback)
    if decided is None:
        return []
    chosen, step = decided
    return deliveries.email_deliveries(event, chosen, step)

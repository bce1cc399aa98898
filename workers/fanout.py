"""Fan-out of one outbox event: the Socket.IO emit to the recipients' rooms and the emails
the notification rule names for it (models/notification_rule.py: one table says who hears
which event, on which channel).

The socket Delivery row makes a dispatch happen once: the task claims it before emitting
and marks it sent when the whole dispatch is done, so a relayed or duplicate task finds it
sent (or held) and does nothing. A message-queue emit that cannot reach Redis only logs in
python-socketio, so the emitter here raises instead, and the task retries with a short
backoff until the delivery's retry window closes; then the row says `failed`, with why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from celery import shared_task
from flask import current_app

from adapters import telemetry
from adapters.broadcast import (
    AlreadyEmitted,
    CheckedRedisManager,
    EmitFailed,
    NoWebNodeListening,
    broadcaster,
)
from adapters.presence import Presence, presence_of
from models import deliveries, outbox, tenancy
from models.db import db, record_despite_outage
from models.email_audience import plan_event_emails
from models.entities import Handoff, OutboxEvent
from models.events import PSA_WRITEBACK, is_session_event
from models.logcontext import bind_handoff
from models.notification_rule import emailed_events, rule_for, stale_reason
from models.representations import event_payload
from models.rooms import listeners, recipient_rooms, session_listeners
from workers import names, psa

log = logging.getLogger(__name__)


def _presence() -> Presence:
    return presence_of(current_app.extensions, current_app.config)


# Held while one worker dispatches; a dispatch that dies keeps the row until then, after
# which the outbox relay sends it again.
SOCKET_LEASE = timedelta(seconds=30)
# Real-time news is worth little late: retry fast (0.5-1 s, doubling, at most 20 s apart)
# for five minutes, then give up visibly.
SOCKET_RETRY = deliveries.RetryPolicy(
    first_retry_seconds=1.0, max_backoff_seconds=20.0, window=timedelta(minutes=5)
)
# The retried task arrives a little after the row's lease lifts, never before it.
COUNTDOWN_MARGIN_SECONDS = 0.2
MAX_RETRIES = 100  # a safety net: the retry window above ends the retries first


def emitter() -> CheckedRedisManager:
    """This process's emitter, on the same message queue and channel as the web nodes."""
    config = current_app.config
    return broadcaster(config["SOCKETIO_MESSAGE_QUEUE"], config["SOCKETIO_CHANNEL"])


def emit_handoff_event(event: OutboxEvent, handoff: Handoff) -> None:
    """Emit the event with the handoff serialized as the API shows it. No web node listening
    is fine while none of the recipients is online (nobody to tell); otherwise it is a
    failure to retry (a web node is reconnecting to Redis)."""
    try:
        emitter().emit_once(
            event.id, event.event, event_payload(handoff), to=recipient_rooms(event.event, handoff)
        )
        telemetry.observe_since(telemetry.LIVE_FANOUT_LATENCY, event.created_at)
    except AlreadyEmitted:
        pass  # the web process emitted it (the relay re-sent an event it was still holding)
    except NoWebNodeListening:
        if _presence().online(listeners(event.event, handoff)):
            raise
        log.info("Event %s (%s): nobody online to receive it", event.id, event.event)


def emit_session_event(event: OutboxEvent) -> None:
    """Emit a session's event (chat, writeback) to the session's room, as the web process
    would have; no web node listening is a failure only while someone who may watch the
    session is online."""
    rooms, payload = outbox.live_form(event)
    try:
        emitter().emit_once(event.id, event.event, payload, to=rooms)
        telemetry.observe_since(telemetry.LIVE_FANOUT_LATENCY, event.created_at)
    except AlreadyEmitted:
        pass
    except NoWebNodeListening:
        if _presence().online(session_listeners(event.session)):
            raise
        log.info("Event %s (%s): nobody online to receive it", event.id, event.event)


def email_for_event(event: OutboxEvent, handoff: Handoff, fallback: bool = False) -> list[int]:
    """The event's emails as the notification rule decides them now: one delivery per
    recipient (created once, however often this runs; held by quiet hours where the rule
    says so) and a send task for those not yet attempted. `fallback`: the live event never
    went out, so everyone counts as offline."""
    online_of = None if fallback else _presence().online
    return _send_new(plan_event_emails(event, handoff, online_of, fallback))


def _send_new(rows: list) -> list[int]:
    """One send task for the email deliveries not attempted yet; the ids enqueued."""
    fresh = [row for row in rows if row.status == "pending" and row.attempts == 0]
    enqueued = [row.id for row in fresh]
    if enqueued:
        current_app.extensions["celery"].send_task(
            names.SEND_EMAILS, args=[enqueued], kwargs={"account_id": fresh[0].account_id}
        )
    return enqueued


def _record(action):
    """Record the dispatch's outcome even through a database restart (within the lease): an
    event already emitted must not be emitted again by the relay."""
    return record_despite_outage(action, SOCKET_LEASE.total_seconds() - 5)


# Events whose dispatch sends emails too.
EMAILED_EVENTS = emailed_events()


def _describe(error: Exception) -> str:
    return str(error) if isinstance(error, EmitFailed) else f"{type(error).__name__}: {error}"


class DispatchIncomplete(Exception):
    def __init__(self, reason: str, retry_in: float, emitted: bool) -> None:
        super().__init__(reason)
        self.retry_in = retry_in
        self.emitted = emitted


def dispatch(outbox_event_id: int, emitted: bool = False) -> str:
    """Run one outbox event's fan-out; returns sent | skipped | failed | missing, or raises
    DispatchIncomplete with when to try again. `emitted`: the event already went live (the
    web process emitted it, or a previous attempt did); only the emails are left.

    The emails of a new handoff do not wait for the socket: an emit that keeps failing
    still lets the offline seniors' emails go, and when the dispatch finally gives up
    without having emitted (or without having learnt who was offline), every senior of
    the account is emailed."""
    event = db.session.get(OutboxEvent, outbox_event_id)
    if event is None:
        log.error("Outbox event %s does not exist; nothing to dispatch", outbox_event_id)
        return "missing"
    if event.event == PSA_WRITEBACK:
        return psa.hand_over(event)  # not a Socket.IO event: the post goes to the psa queue
    bind_handoff(event.handoff_id)
    delivery = deliveries.claim_socket_delivery(event, SOCKET_LEASE)
    if delivery is None:
        log.info("Outbox event %s is dispatched or being dispatched; skipping", event.id)
        return "skipped"
    if is_session_event(event.event):  # live only: no handoff, nothing to go stale
        return _dispatch_session_event(event, delivery, emitted or event.emitted_at is not None)
    handoff = db.session.get(Handoff, event.handoff_id)
    if stale := stale_reason(event.event, handoff.status, handoff.claimed_by_id):
        deliveries.mark_failed(delivery, stale)
        log.info("Outbox event %s (%s): %s", event.id, event.event, stale)
        return "failed"
    outcome = _fan_out(event, handoff, emitted or event.emitted_at is not None)
    if not outcome.errors:
        _record(lambda: deliveries.mark_sent(delivery))
        return "sent"
    return _retry_or_give_up(event, delivery, outcome)


def _dispatch_session_event(event: OutboxEvent, delivery, emitted: bool) -> str:
    outcome = _Outcome(emitted=emitted, emailed=True)
    if not outcome.emitted:
        try:
            emit_session_event(event)
            outcome.emitted = True
        except Exception as exc:  # the message queue or presence (Redis)
            outcome.errors.append(_describe(exc))
    if outcome.errors:
        return _retry_or_give_up(event, delivery, outcome)
    _record(lambda: deliveries.mark_sent(delivery))
    return "sent"


@dataclass
class _Outcome:
    emitted: bool
    emailed: bool
    errors: list[str] = field(default_factory=list)


def _fan_out(event: OutboxEvent, handoff: Handoff, emitted: bool) -> _Outcome:
    """The emit (unless it went live already), then the event's emails; every failure is
    collected, none stops the others."""
    outcome = _Outcome(emitted=emitted, emailed=event.event not in EMAILED_EVENTS)
    if not outcome.emitted:
        try:
            emit_handoff_event(event, handoff)
            outcome.emitted = True
        except Exception as exc:  # the message queue or presence (Redis)
            outcome.errors.append(_describe(exc))
    if not outcome.emailed:
        try:
            email_for_event(event, handoff)
            outcome.emailed = True
        except Exception as exc:  # presence (Redis) or the broker
            outcome.errors.append(f"Emails: {_describe(exc)}")
    return outcome


def _retry_or_give_up(event: OutboxEvent, delivery, outcome: _Outcome) -> str:
    reason = "; ".join(outcome.errors)
    delay = _record(lambda: deliveries.mark_retrying(delivery, reason, SOCKET_RETRY))
    if delay is not None:
        log.warning(
            "Outbox event %s attempt %s failed (%s); retrying in %.1f s",
            event.id,
            delivery.attempts,
            reason,
            delay,
        )
        raise DispatchIncomplete(reason, delay + COUNTDOWN_MARGIN_SECONDS, outcome.emitted)
    log.error("Outbox event %s: gave up dispatching: %s", event.id, reason)
    if rule_for(event.event).falls_back and not (outcome.emitted and outcome.emailed):
        # Nobody may go untold: without the socket event, or without knowing who was
        # offline, every senior gets the email.
        try:
            email_for_event(event, db.session.get(Handoff, event.handoff_id), fallback=True)
        except Exception:
            log.exception("Outbox event %s: could not email the seniors either", event.id)
    return "failed"


@shared_task(name=names.DISPATCH_OUTBOX_EVENT, bind=True, max_retries=MAX_RETRIES)
def dispatch_outbox_event(
    self, outbox_event_id: int, emitted: bool = False, account_id: int | None = None
) -> str:
    """Emit one outbox event to its rooms (and email offline seniors for a new handoff)."""
    try:
        return dispatch(int(outbox_event_id), emitted)
    except DispatchIncomplete as incomplete:
        raise self.retry(
            args=[outbox_event_id],
            kwargs={"emitted": incomplete.emitted, "account_id": tenancy.current_tenant()},
            countdown=incomplete.retry_in,
            exc=incomplete,
        ) from incomplete


@shared_task(name=names.DISPATCH_OUTBOX_EVENTS)
def dispatch_outbox_events(
    outbox_event_ids: list[int],
    emitted_ids: list[int] | None = None,
    account_ids: list[int | None] | None = None,
) -> dict[str, int]:
    """Several outbox events a busy web process published as one message (workers.publish):
    dispatch each in turn, as its own account's work (`account_ids`, in the same order;
    looked up when missing), `emitted_ids` being those the web process already emitted.
    One that needs another try goes on as its own dispatch_outbox_event task; one that
    broke is left to the outbox relay."""
    emitted = set(emitted_ids or ())
    accounts = list(account_ids or ())
    outcomes: dict[str, int] = {}
    for index, outbox_event_id in enumerate(outbox_event_ids):
        account_id = accounts[index] if index < len(accounts) else None
        if account_id is None:
            account_id = tenancy.account_of(OutboxEvent, outbox_event_id)
        with tenancy.use_tenant(account_id):
            outcome = _dispatch_one(int(outbox_event_id), outbox_event_id in emitted, account_id)
        # A fresh session for the next event: the bookkeeping commits keep their rows loaded,
        # and a handoff two events share must be read as it is now, not as the first saw it.
        db.session.remove()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _dispatch_one(outbox_event_id: int, emitted: bool, account_id: int | None) -> str:
    """One event of a batch: dispatched, handed to a task of its own to retry, or left to
    the relay."""
    try:
        return dispatch(outbox_event_id, emitted)
    except DispatchIncomplete as incomplete:
        dispatch_outbox_event.apply_async(
            args=[outbox_event_id],
            kwargs={"emitted": incomplete.emitted, "account_id": account_id},
            countdown=incomplete.retry_in,
        )
        return "retrying"
    except Exception:
        # Its socket delivery (or its absence) tells the relay to send it again.
        log.exception("Outbox event %s: dispatch failed; the relay will retry", outbox_event_id)
        db.session.rollback()
        return "error"

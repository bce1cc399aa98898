"""Email delivery: one escalation email per delivery row, sent at most once, retried on
transient SMTP failures, and swept up again when its task was lost.

The fan-out task creates the rows (`models.deliveries.email_deliveries`) and enqueues one
`send_emails` for them; retries and the sweeper enqueue `send_email` for one row; beat runs
`sweep_deliveries` every 5 seconds. See docs/email.md.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.errors import MessageError
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from celery import shared_task
from flask import current_app

from adapters import telemetry
from models import clock, deliveries, shift_notices, tenancy, timeline
from models.db import db, record_despite_outage
from models.entities import Account, Delivery, Handoff
from models.events import HANDOFF_CREATED, HANDOFF_REASSIGNED
from models.logcontext import bind_handoff
from models.notification_rule import message_kind, stale_reason
from workers import names
from workers.email_message import (
    SHIFT,
    RenderedEmail,
    ShiftNotice,
    compose,
    compose_shift_notice,
    message_id,
    notice_for,
    render,
    retitle_for_event,
    shift_message_id,
    thread_id,
)
from workers.settings import MAX_COUNTDOWN_SECONDS

log = logging.getLogger(__name__)

# What goes to the server: the wire form (escalation emails), or a message the standard
# library flattens (shift notices, and addresses the wire form does not cover).
Outgoing = RenderedEmail | EmailMessage

# The retried task arrives a little after the row's lease lifts, never before it.
COUNTDOWN_MARGIN_SECONDS = 0.5
# MAIL, RCPT, DATA, the message and its final reply: each may take up to SMTP_TIMEOUT.
SEND_PHASE_TIMEOUTS = 4


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    username: str
    password: str
    starttls: bool
    timeout: float
    mail_from: str
    base_url: str
    lease: timedelta
    retry: deliveries.RetryPolicy
    sweep_grace: timedelta

    @classmethod
    def from_config(cls, config: Any) -> EmailSettings:
        # A countdown longer than the broker's visibility timeout would be delivered twice.
        max_backoff = min(config["EMAIL_MAX_BACKOFF_SECONDS"], MAX_COUNTDOWN_SECONDS)
        return cls(
            host=config["SMTP_HOST"],
            port=config["SMTP_PORT"],
            username=config["SMTP_USERNAME"],
            password=config["SMTP_PASSWORD"],
            starttls=config["SMTP_STARTTLS"],
            timeout=config["SMTP_TIMEOUT"],
            mail_from=config["MAIL_FROM"],
            base_url=config["BASE_URL"],
            lease=timedelta(seconds=config["DELIVERY_LEASE_SECONDS"]),
            retry=deliveries.RetryPolicy(
                first_retry_seconds=config["EMAIL_FIRST_RETRY_SECONDS"],
                max_backoff_seconds=max_backoff,
                window=timedelta(seconds=config["EMAIL_RETRY_WINDOW_SECONDS"]),
            ),
            sweep_grace=timedelta(seconds=config["DELIVERY_SWEEP_GRACE_SECONDS"]),
        )


class TransientFailure(Exception):
    """Worth another try later: the server was unreachable, slow, or answered 4xx."""


class ServerUnreachable(TransientFailure):
    """The server refused the connection, could not be reached, or stopped answering: the
    next email to it would only wait for the same."""


class PermanentFailure(Exception):
    """Another try would fail the same way: a 5xx answer, or nothing to send."""


# --------------------------------------------------------------------------- SMTP


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def _by_code(code: int, what: str) -> Exception:
    failure = PermanentFailure if 500 <= code <= 599 else TransientFailure
    return failure(what)


def _refused(recipients: dict[str, tuple[int, bytes]]) -> Exception:
    """A refused recipient is permanent only if the server said so (5xx)."""
    details = "; ".join(
        f"{rcpt}: {_reply(code, text)}" for rcpt, (code, text) in recipients.items()
    )
    what = f"Recipient refused: {details}"
    if all(400 <= code <= 499 for code, _ in recipients.values()):
        return TransientFailure(what)
    return PermanentFailure(what)


def classify(error: Exception) -> Exception:
    """Map what smtplib raised to a TransientFailure or a PermanentFailure."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return _refused(error.recipients)
    if isinstance(error, smtplib.SMTPResponseException):
        return _by_code(error.smtp_code, f"SMTP {_reply(error.smtp_code, error.smtp_error)}")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return ServerUnreachable(f"SMTP server disconnected: {error}")
    if isinstance(error, smtplib.SMTPException):
        # STARTTLS or AUTH asked for but not offered: the configuration, not the moment.
        return PermanentFailure(f"SMTP: {error}")
    if isinstance(error, OSError):  # refused, unreachable, timed out, TLS handshake
        return ServerUnreachable(f"SMTP connection to the server failed: {error!r}")
    return error


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely; once the message is accepted, a bad QUIT must not turn into a failure."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _open(settings: EmailSettings) -> smtplib.SMTP:
    # Connect in the constructor: STARTTLS checks the certificate against this host name.
    smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        smtp.ehlo()
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username, settings.password)
    except BaseException:
        smtp.close()
        raise
    return smtp


@dataclass
class _Held:
    smtp: smtplib.SMTP
    server: tuple[str, int, str]
    sent: int = 0
    last_used: float = 0.0


class SmtpConnections:
    """One open SMTP connection per sending thread, reused for many messages.

    The mailer pool's threads each keep theirs, so the number of connections (and how many
    a hung server can tie up) is the pool's concurrency. A connection idle too long, or
    used for MAX_MESSAGES, is closed; each is checked with NOOP before it is reused."""

    MAX_MESSAGES = 100
    MAX_IDLE_SECONDS = 30.0

    def __init__(self) -> None:
        self._local = threading.local()

    def send(
        self,
        message: Outgoing,
        envelope_from: str,
        recipient: str,
        settings: EmailSettings,
        deadline: float,
    ) -> dict:
        """Send on this thread's connection (opening one if needed); raises what smtplib
        raised, having dropped the connection."""
        server = (settings.host, settings.port, settings.username)
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and not self._still_good(held, server):
            self.discard()
            held = None
        if held is None:
            held = self._local.held = _Held(_open(settings), server)
        return self._send_on(held, message, envelope_from, recipient, settings, deadline)

    def _still_good(self, held: _Held, server: tuple[str, int, str]) -> bool:
        """Same server, not idle too long, and still answering (NOOP, one round trip):
        checked before sending, so a message never goes out over a dead connection and
        never has to be sent again on a fresh one."""
        idle = time.monotonic() - held.last_used
        if held.server != server or idle > self.MAX_IDLE_SECONDS:
            return False
        try:
            return held.smtp.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def _send_on(self, held, message, envelope_from, recipient, settings, deadline) -> dict:
        if deadline - time.monotonic() < SEND_PHASE_TIMEOUTS * settings.timeout:
            raise TransientFailure("The SMTP server was too slow; not sending past the lease.")
        try:
            if isinstance(message, RenderedEmail):
                refused = held.smtp.sendmail(envelope_from, [recipient], message.data)
            else:
                refused = held.smtp.send_message(
                    message, from_addr=envelope_from, to_addrs=[recipient]
                )
        except BaseException:
            self.discard()
            raise
        held.sent += 1
        held.last_used = time.monotonic()
        if held.sent >= self.MAX_MESSAGES:
            self.discard()
        return refused

    def discard(self) -> None:
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            _close(held.smtp)


connections = SmtpConnections()


def send_message(
    message: Outgoing, recipient: str, settings: EmailSettings, deadline: float
) -> None:
    """Send over SMTP (timeout, STARTTLS and login when configured) on this thread's
    connection, or raise a TransientFailure / PermanentFailure. `deadline`
    (time.monotonic()) is when this sender's lease on the delivery runs out: the message is
    not handed over unless the whole exchange fits before it, so a sweeper-started second
    sender cannot overlap."""
    if not settings.host:
        raise TransientFailure("SMTP is not configured (SMTP_HOST is empty).")
    envelope_from = parseaddr(settings.mail_from)[1] or settings.mail_from
    try:
        refused = connections.send(message, envelope_from, recipient, settings, deadline)
    except (smtplib.SMTPException, OSError) as error:
        connections.discard()
        raise classify(error) from error
    if refused:  # only when several recipients were given and some were accepted
        raise _refused(refused)


# --------------------------------------------------------------------------- one attempt


@dataclass(frozen=True)
class Attempt:
    status: str  # sent | retrying | failed | skipped
    retry_in: float | None = None
    unreachable: ServerUnreachable | None = None  # why the server could not take it


def build_message(
    delivery: Delivery, settings: EmailSettings, keep: list | None = None
) -> tuple[Outgoing, str]:
    """The message of one claimed delivery and its address. `keep`: a batch's list that
    holds the rows the email was built from (the handoff's session), so the next email
    about the same handoff finds them in the session instead of reading them again; the
    handoff itself is read fresh for every email."""
    recipient = delivery.recipient
    if recipient is None or not recipient.email:
        raise PermanentFailure("The recipient no longer exists.")
    kind = message_kind(delivery.event)
    if kind == SHIFT:
        return _shift_message(delivery, recipient, settings), recipient.email
    # Read as it is now: a claim since the batch began makes a reminder moot.
    handoff = db.session.get(Handoff, delivery.handoff_id, populate_existing=True)
    if handoff is None:
        raise PermanentFailure("The escalation no longer exists.")
    held = delivery.held_until is not None
    if stale := stale_reason(
        delivery.event, handoff.status, handoff.claimed_by_id, delivery.recipient_id, held
    ):
        raise PermanentFailure(stale)  # a claim won the race: this step says nothing now
    try:
        notice = _notice(delivery, handoff)
        if keep is not None:
            keep.append(handoff.session)
        first = thread_id(handoff.id, recipient.id, settings.mail_from)
        own_id = message_id(delivery.id, handoff.id, settings.mail_from)
        fields = {
            "recipient_name": recipient.name,
            "recipient_email": recipient.email,
            "mail_from": settings.mail_from,
            "base_url": settings.base_url,
            # The first email about a handoff is the one the later ones thread under.
            "message_id": first if delivery.event == HANDOFF_CREATED else own_id,
            "replies_to": first,
            "date": clock.now(),
            "kind": kind,
        }
        message = render(notice, event=delivery.event, **fields)
        if message is None:  # an address the wire form does not cover
            message = compose(notice, **fields)
            retitle_for_event(message, delivery.event, notice)
    except (MessageError, ValueError, TypeError) as error:
        raise PermanentFailure(f"Cannot build the message: {error}") from error
    return message, recipient.email


def _notice(delivery: Delivery, handoff: Handoff):
    """What the email says: times in the recipient's zone (else the account's), why it went
    (the delivery's reason), how long it has waited, and who handed it on and why."""
    account = db.session.get(Account, handoff.account_id)
    zone = delivery.recipient.timezone or (account.timezone if account else None) or "UTC"
    more: dict[str, Any] = {"event": delivery.event, "delivery_reason": delivery.reason}
    more["now"] = clock.now()
    if delivery.event == HANDOFF_REASSIGNED:
        change = timeline.last_change(handoff.id, timeline.REASSIGNED)
        if change is not None:
            more["handed_over_by"] = change.actor.name if change.actor else None
            more["handover_reason"] = (change.details or {}).get("reason")
    if delivery.event == HANDOFF_CREATED:
        more["event"] = None
    return notice_for(handoff, zone, **more)


def _shift_message(delivery: Delivery, recipient, settings: EmailSettings) -> EmailMessage:
    """A shift notice, its times in the senior's zone (else the account's); none once the
    shift is over."""
    details = delivery.details or {}
    if shift_notices.ended_before_sent(details, clock.now()):
        raise PermanentFailure("Not sent: the shift ended before this notice went out.")
    account = db.session.get(Account, delivery.account_id)
    try:
        notice = ShiftNotice(
            rotation=str(details["rotation"]),
            start=datetime.fromisoformat(details["start"].replace("Z", "+00:00")),
            end=datetime.fromisoformat(details["end"].replace("Z", "+00:00")),
            timezone=recipient.timezone or (account.timezone if account else "UTC"),
        )
        return compose_shift_notice(
            notice,
            recipient_name=recipient.name,
            recipient_email=recipient.email,
            mail_from=settings.mail_from,
            base_url=settings.base_url,
            message_id=shift_message_id(delivery.id, settings.mail_from),
            date=clock.now(),
        )
    except (KeyError, MessageError, ValueError, TypeError) as error:
        raise PermanentFailure(f"Cannot build the message: {error}") from error


def attempt_deliveries(delivery_ids: list[int], settings: EmailSettings) -> dict[int, Attempt]:
    """Claim these email deliveries (one UPDATE), then send each and record its outcome. A
    delivery already sent or failed, held by another sender, or not an email is skipped,
    so a duplicate task is harmless."""
    deadline = time.monotonic() + settings.lease.total_seconds()
    claimed = deliveries.claim_each(delivery_ids, settings.lease, deliveries.EMAIL)
    outcomes = {delivery_id: Attempt("skipped") for delivery_id in delivery_ids}
    if skipped := sorted(set(delivery_ids) - {delivery.id for delivery in claimed}):
        log.info("Email deliveries %s are done, held elsewhere or not email; skipping", skipped)
    # The recipients in one query, held here so each row's `recipient` is found loaded.
    _recipients = deliveries.load_recipients(claimed)
    _read = []  # what the batch's emails were built from, held while it runs
    announced = deliveries.announced_at_each(claimed)
    unreachable: ServerUnreachable | None = None
    for delivery in claimed:
        bind_handoff(delivery.handoff_id)
        if unreachable is not None:
            outcomes[delivery.id] = _not_tried(delivery, settings, unreachable)
            continue
        attempt = _attempt(delivery, settings, deadline, announced.get(delivery.id), _read)
        outcomes[delivery.id], unreachable = attempt, attempt.unreachable
    return outcomes


def attempt_delivery(delivery_id: int, settings: EmailSettings) -> Attempt:
    return attempt_deliveries([delivery_id], settings)[delivery_id]


def _attempt(
    delivery: Delivery, settings: EmailSettings, deadline: float, announced, keep: list
) -> Attempt:
    """Send one claimed delivery and record the outcome."""
    try:
        message, address = build_message(delivery, settings, keep)
        send_message(message, address, settings, deadline)
    except PermanentFailure as failure:
        telemetry.SMTP_ERRORS.labels(kind="permanent").inc()
        deliveries.mark_failed(delivery, str(failure))
        log.warning("Email delivery %s failed for good: %s", delivery.id, failure)
        return Attempt("failed")
    except Exception as error:
        return _retry_later(delivery, settings, error)
    # The SMTP server has it: record that even through a database restart, or the sweeper
    # would send it again.
    patience = max(1.0, deadline - time.monotonic())
    record_despite_outage(lambda: deliveries.mark_sent(delivery), patience)
    telemetry.observe_since(telemetry.EMAIL_LAG, announced)
    sent_id = message.message_id if isinstance(message, RenderedEmail) else message["Message-ID"]
    log.info("Email delivery %s sent to %s (%s)", delivery.id, address, sent_id)
    return Attempt("sent")


def _not_tried(delivery: Delivery, settings: EmailSettings, why: ServerUnreachable) -> Attempt:
    """The server just refused or hung on the batch's previous email: this one waits for a
    retry too, instead of being built and making the server wait again. It was never tried,
    so it counts no attempt, and its backoff does not grow."""
    delivery.attempts -= 1  # the claim counted one
    delay = deliveries.mark_retrying(delivery, f"Not tried: {why}", settings.retry)
    if delay is None:
        return Attempt("failed")
    return Attempt("retrying", delay)


def _retry_later(delivery: Delivery, settings: EmailSettings, error: Exception) -> Attempt:
    if isinstance(error, TransientFailure):
        telemetry.SMTP_ERRORS.labels(kind="transient").inc()
        reason = str(error)
    else:
        log.exception("Unexpected error sending email delivery %s", delivery.id)
        reason = f"Unexpected error: {error!r}"
    delay = deliveries.mark_retrying(delivery, reason, settings.retry)
    unreachable = error if isinstance(error, ServerUnreachable) else None
    if delay is None:
        log.warning("Email delivery %s gave up: %s", delivery.id, reason)
        return Attempt("failed", unreachable=unreachable)
    log.info(
        "Email delivery %s attempt %s failed (%s); next try in %.1f s",
        delivery.id,
        delivery.attempts,
        reason,
        delay,
    )
    return Attempt("retrying", delay, unreachable)


def schedule_retry(delivery_id: int, delay: float) -> None:
    """Re-run the task after `delay`; if the broker is unreachable the sweeper takes over."""
    countdown = min(delay + COUNTDOWN_MARGIN_SECONDS, MAX_COUNTDOWN_SECONDS)
    try:
        send_email.apply_async(
            args=[delivery_id],
            kwargs={"account_id": tenancy.current_tenant()},
            countdown=countdown,
        )
    except Exception:
        log.warning(
            "Could not schedule the retry of delivery %s; the sweeper will send it",
            delivery_id,
            exc_info=True,
        )


# --------------------------------------------------------------------------- tasks


@shared_task(name=names.SEND_EMAIL, ignore_result=True)
def send_email(delivery_id: int, account_id: int | None = None) -> str:
    """Send one escalation email (a delivery row id). Running it twice is harmless."""
    outcome = attempt_delivery(int(delivery_id), EmailSettings.from_config(current_app.config))
    if outcome.retry_in is not None:
        schedule_retry(int(delivery_id), outcome.retry_in)
    return outcome.status


@shared_task(name=names.SEND_EMAILS, ignore_result=True)
def send_emails(delivery_ids: list[int], account_id: int | None = None) -> dict[str, int]:
    """The emails one dispatch planned, in one message: claimed together, then each sent,
    recorded and retried on its own, exactly as send_email does with one. One message and
    one claim instead of one per recipient spare the broker, this pool and the database a
    round of work per email."""
    settings = EmailSettings.from_config(current_app.config)
    attempts = attempt_deliveries([int(delivery_id) for delivery_id in delivery_ids], settings)
    outcomes: dict[str, int] = {}
    for delivery_id, attempt in attempts.items():
        if attempt.retry_in is not None:
            schedule_retry(delivery_id, attempt.retry_in)
        outcomes[attempt.status] = outcomes.get(attempt.status, 0) + 1
    return outcomes


def sweep(grace: timedelta) -> list[int]:
    """Enqueue again the email deliveries nobody is working on although they are due."""
    requeued: list[int] = []
    for delivery in deliveries.due(grace, channel=deliveries.EMAIL):
        try:
            send_email.apply_async(args=[delivery.id], kwargs={"account_id": delivery.account_id})
        except Exception:
            log.warning("Broker unreachable; the next sweep tries again", exc_info=True)
            break
        requeued.append(delivery.id)
    deliveries.note_requeued(requeued)
    if requeued:
        log.warning(
            "Re-enqueued %d email deliveries whose task was lost: %s", len(requeued), requeued
        )
    return requeued


def release_held() -> list[int]:
    """Send the emails quiet hours held, now that they have ended (one task for them all);
    if the broker cannot take it, the sweeper sends them after its grace period."""
    released = deliveries.release_held()
    if released:
        log.info("Quiet hours ended for %d held emails: %s", len(released), released)
        try:
            enqueue_per_account(released)
        except Exception:
            log.warning("Broker unreachable; the sweeper sends the released emails", exc_info=True)
    return released


def enqueue_per_account(delivery_ids: list[int], per_task: int | None = None) -> None:
    """Send tasks for email deliveries of several accounts (a sweep's): one SEND_EMAILS
    message per account (and per `per_task` emails), each carrying its account. Raises the
    broker's error, having sent what went before."""
    celery = current_app.extensions["celery"]
    by_account: dict[int, list[int]] = {}
    for delivery_id, account_id in deliveries.accounts_of(delivery_ids).items():
        by_account.setdefault(account_id, []).append(delivery_id)
    for account_id, ids in by_account.items():
        step = per_task or len(ids)
        for start in range(0, len(ids), step):
            celery.send_task(
                names.SEND_EMAILS,
                args=[ids[start : start + step]],
                kwargs={"account_id": account_id},
            )


# A sweep the worker could not start before the next one is due is dropped (same work).
@shared_task(name=names.SWEEP_DELIVERIES, ignore_result=True, expires=5)
def sweep_deliveries() -> int:
    """Beat, every 5 s: a worker killed mid-send or a lost task leaves a delivery due; an
    email held by quiet hours is due when they end."""
    settings = EmailSettings.from_config(current_app.config)
    return len(release_held()) + len(sweep(settings.sweep_grace))

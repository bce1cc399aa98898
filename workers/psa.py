"""The PSA tasks, on their own `psa` queue: post a writeback's note to the ticket (retried
on 429, 5xx and timeouts), read a ticket's notes after a callback, and the beat task that
polls the tickets of claimed handoffs still waiting for a first action and re-enqueues
writebacks whose task was lost. See docs/psa.md."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from flask import current_app

from models import deliveries, tenancy
from models.entities import OutboxEvent
from models.psa import inbound, outbound
from models.psa.base import PsaError, PsaUnavailable
from models.psa.settings import PsaSettings
from workers import names
from workers.settings import MAX_COUNTDOWN_SECONDS

log = logging.getLogger(__name__)

COUNTDOWN_MARGIN_SECONDS = 0.5
SYNC_RETRY_SECONDS = 30
SYNC_MAX_RETRIES = 5
# A queued post whose task never ran (a lost message, a killed worker) is sent again after this.
SWEEP_GRACE = timedelta(seconds=60)


def settings() -> PsaSettings:
    return current_app.extensions.get("psa_settings") or PsaSettings.from_config(current_app.config)


def hand_over(event: OutboxEvent) -> str:
    """A `psa.writeback` outbox event reached the fan-out: queue the post on the psa queue."""
    delivery = outbound.delivery_for_event(event.id)
    if delivery is None or delivery.status not in ("pending", "retrying"):
        return "skipped"
    current_app.extensions["celery"].send_task(
        names.PSA_POST_NOTE, args=[delivery.id], kwargs={"account_id": delivery.account_id}
    )
    return "sent"


def _schedule(delivery_id: int, delay: float) -> None:
    countdown = min(delay + COUNTDOWN_MARGIN_SECONDS, MAX_COUNTDOWN_SECONDS)
    try:
        post_note.apply_async(
            args=[delivery_id],
            kwargs={"account_id": tenancy.current_tenant()},
            countdown=countdown,
        )
    except Exception:
        log.warning(
            "Could not schedule PSA delivery %s; the sweep sends it", delivery_id, exc_info=True
        )


@shared_task(name=names.PSA_POST_NOTE, ignore_result=True)
def post_note(delivery_id: int, account_id: int | None = None) -> str:
    """Post one writeback's note (a delivery id). Running it twice is harmless."""
    outcome = outbound.attempt(int(delivery_id), settings())
    if outcome.retry_in is not None:
        _schedule(int(delivery_id), outcome.retry_in)
    return outcome.status


@shared_task(
    name=names.PSA_SYNC_TICKET, bind=True, ignore_result=True, max_retries=SYNC_MAX_RETRIES
)
def sync_ticket(self, account_id: int, ticket_id: str) -> int:
    """Read one ticket's notes from the PSA and record the first actions they show."""
    try:
        return inbound.sync_ticket(int(account_id), str(ticket_id), settings())
    except PsaUnavailable as exc:
        countdown = max(exc.retry_after or 0.0, SYNC_RETRY_SECONDS)
        raise self.retry(countdown=countdown, exc=exc) from exc
    except PsaError as exc:  # keys refused, ticket gone: the next poll tries again
        log.warning(
            "Account %s ticket %s: cannot read notes: %s", account_id, ticket_id, exc.message
        )
        return 0


@shared_task(name=names.PSA_POLL, ignore_result=True, expires=60)
def poll() -> dict[str, int]:
    """Beat: read the notes of claimed handoffs still without a first action (callbacks may
    never reach us), and re-send PSA posts whose task was lost."""
    celery = current_app.extensions["celery"]
    polled = 0
    for account_id, ticket_id in inbound.tickets_to_poll():
        celery.send_task(names.PSA_SYNC_TICKET, args=[account_id, ticket_id])
        polled += 1
    due = deliveries.due(SWEEP_GRACE, channel=deliveries.PSA)
    for row in due:
        celery.send_task(names.PSA_POST_NOTE, args=[row.id], kwargs={"account_id": row.account_id})
    requeued = [row.id for row in due]
    deliveries.note_requeued(requeued)
    return {"polled": polled, "requeued": len(requeued)}

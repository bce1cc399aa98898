"""The outbox relay (beat, every 5 s): hand the broker whatever the web process could not.

An escalation commits its outbox row and the web process publishes the dispatch task right
after; when Redis is down that publish fails fast and the row stays unpublished. The relay
publishes such rows once they are a few seconds old. It also re-sends dispatches that
started but never finished (a worker killed mid-task leaves the socket delivery unsent
after its lease), and dispatch tasks that never started at all (taken by a worker killed
before it began, or dropped by a Redis that restarted empty). Relaying twice is harmless:
the dispatch claims the socket delivery row first, so a second task for the same event
does nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from flask import current_app

from models import deliveries, outbox
from workers import names
from workers.observability import stamp_beat_tick
from workers.publish import publish_outbox_events
from workers.settings import VISIBILITY_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

# A tick the worker could not start within one schedule interval is dropped: the next tick
# does the same work, so a backlog of ticks (worker down for an hour) would only be noise.
EXPIRES_SECONDS = 5
# A dispatch whose lease ran out this long ago was lost (the worker died mid-task); a
# dispatch task published this long ago that never started was lost before it began.
STUCK_DISPATCH_GRACE = timedelta(seconds=30)
# Past this, Redis hands an unacknowledged task back by itself (the visibility timeout).
LOST_TASK_WINDOW = timedelta(seconds=VISIBILITY_TIMEOUT_SECONDS)


def relay(older_than: timedelta) -> dict[str, list[int]]:
    unpublished = outbox.unpublished(older_than)
    published = publish_outbox_events(unpublished) if unpublished else []
    if unpublished:
        log.warning(
            "Relayed %d of %d unpublished outbox events: %s",
            len(published),
            len(unpublished),
            published,
        )
    stuck = deliveries.due(STUCK_DISPATCH_GRACE, channel=deliveries.SOCKET)
    stuck_events = [row.outbox_event_id for row in stuck if row.outbox_event_id is not None]
    resent = publish_outbox_events(stuck_events) if stuck_events else []
    if resent:
        deliveries.note_requeued([row.id for row in stuck if row.outbox_event_id in resent])
        log.warning("Re-sent %d dispatches that never finished: %s", len(resent), resent)
    lost = deliveries.undispatched_events(STUCK_DISPATCH_GRACE, LOST_TASK_WINDOW)
    redispatched = publish_outbox_events(lost) if lost else []
    if redispatched:
        outbox.note_republished(redispatched)
        log.warning(
            "Re-sent %d dispatch tasks that never started (lost with a worker or Redis): %s",
            len(redispatched),
            redispatched,
        )
    return {"published": published, "resent": resent, "redispatched": redispatched}


@shared_task(name=names.RELAY_OUTBOX, ignore_result=True, expires=EXPIRES_SECONDS)
def relay_outbox() -> dict[str, list[int]]:
    """Publish outbox events still unpublished after OUTBOX_RELAY_AFTER_SECONDS."""
    stamp_beat_tick(current_app.config["REDIS_URL"])
    return relay(timedelta(seconds=current_app.config["OUTBOX_RELAY_AFTER_SECONDS"]))

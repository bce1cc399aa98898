"""Handing committed outbox events to the broker, from the web process or the relay.

The served web process (wsgi.py) publishes after the response, from one background
publisher: a request only queues its outbox ids in memory, and the publisher sends whatever
has gathered as one message (a busy server's requests share the broker round trip and the
`published_at` update). Anything still in memory when the process dies is committed in the
outbox, and the relay sends it a few seconds later. Elsewhere (CLI, tests) publishing is
inline, right after the commit.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from flask import Flask, current_app

from models import outbox
from workers.names import DISPATCH_OUTBOX_EVENT, DISPATCH_OUTBOX_EVENTS, QUEUE_REALTIME

log = logging.getLogger(__name__)

# Events per message: a batch is dispatched in turn by one worker process, so batching
# trades latency for broker round trips. A few events (a moderate rate) go one per message,
# spread over the worker's processes; only a busy server's backlog goes in batches.
MAX_BATCH = 20
BATCH_FROM = 10


def publish_outbox_events(outbox_event_ids: list[int]) -> list[int]:
    """Send the dispatch tasks (one message per event, or per batch of events); return the
    ids the broker accepted.

    Bounded in time by the publish retry policy and socket timeouts in celery_config;
    any broker error is logged, never raised: the outbox relay sends those later.
    """
    celery = current_app.extensions["celery"]
    published: list[int] = []
    size = MAX_BATCH if len(outbox_event_ids) >= BATCH_FROM else 1
    for start in range(0, len(outbox_event_ids), size):
        batch = outbox_event_ids[start : start + size]
        try:
            if len(batch) == 1:
                celery.send_task(DISPATCH_OUTBOX_EVENT, args=batch)
            else:
                celery.send_task(DISPATCH_OUTBOX_EVENTS, args=[batch], queue=QUEUE_REALTIME)
        except Exception:  # kombu OperationalError, socket errors, timeouts
            log.warning(
                "Broker unreachable; outbox events %s wait for the relay", batch, exc_info=True
            )
            break
        published += batch
    try:
        outbox.mark_published(published)
    except Exception:
        # The tasks went out; at worst the relay sends them again, which is harmless.
        log.warning("Could not mark outbox events %s published", published, exc_info=True)
    return published


class BackgroundPublisher:
    """One per web process: requests hand it outbox ids; it publishes what has gathered."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._pending: deque[int] = deque()
        self._wake = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def submit(self, outbox_event_ids: list[int]) -> None:
        self._pending.extend(outbox_event_ids)
        self._wake.set()
        if not self._started:
            with self._lock:
                if not self._started:
                    threading.Thread(target=self._run, name="outbox-publisher", daemon=True).start()
                    self._started = True

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            batch: list[int] = []
            while self._pending:
                batch.append(self._pending.popleft())
            if not batch:
                continue
            try:
                with self.app.app_context():
                    publish_outbox_events(batch)
            except Exception:  # never let the publisher die; the relay covers the batch
                log.exception("Publishing outbox events %s failed", batch)


def publish_in_background(app: Flask) -> None:
    """From now on this process publishes after the response (wsgi.py, when served)."""
    app.extensions["outbox_publisher"] = BackgroundPublisher(app)


def publish_announced() -> None:
    """After a command committed: publish the outbox events it announced."""
    if ids := outbox.take_announced():
        publisher = current_app.extensions.get("outbox_publisher")
        if publisher is not None:
            publisher.submit(ids)
        else:
            publish_outbox_events(ids)

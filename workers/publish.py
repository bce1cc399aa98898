"""After a commit: the live emit, then the dispatch tasks, from the process that committed.

`install(app)` registers the outbox's commit listener. For each committed event it
1. emits the event on the Socket.IO message queue at once (every web node delivers it to
   its own connections), so the live path never waits on a worker, let alone on email;
2. sends the dispatch task, which plans the emails and, if the emit failed, emits again;
3. records both on the outbox row (`published_at`, `emitted_at`).

The served web process (wsgi.py) does this from one background publisher, after the
response: a request only queues its events in memory, and the publisher takes whatever has
gathered (a busy server's requests share the broker round trips and the outbox update).
Elsewhere (CLI, tests, tasks) it runs inline, right after the commit. Anything still in
memory when the process dies is committed in the outbox, and the relay sends it a few
seconds later.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from flask import Flask, current_app

from models import outbox, telemetry
from models.broadcast import AlreadyEmitted, EmitFailed, NoWebNodeListening, broadcaster
from models.outbox import Announced
from workers.names import DISPATCH_OUTBOX_EVENT, DISPATCH_OUTBOX_EVENTS, QUEUE_REALTIME

log = logging.getLogger(__name__)

# Events per message: a batch is dispatched in turn by one worker process, so batching
# trades latency for broker round trips. A few events (a moderate rate) go one per message,
# spread over the worker's processes; only a busy server's backlog goes in batches.
MAX_BATCH = 20
BATCH_FROM = 10


def emit_live(announced: list[Announced]) -> list[int]:
    """Put each event on the Socket.IO message queue; return the ids that reached a web node.

    Each publish waits at most PUBLISH_TIMEOUT_SECONDS for Redis (this runs after the
    response, so the wait never reaches a request); after the first failure the rest of the
    batch is left to the workers, so a frozen Redis costs one timeout."""
    config = current_app.config
    url = config.get("SOCKETIO_MESSAGE_QUEUE")
    if not url or not config.get("EMIT_FROM_WEB", True):
        return []
    queue = broadcaster(url, config["SOCKETIO_CHANNEL"], config["PUBLISH_TIMEOUT_SECONDS"])
    emitted: list[int] = []
    for event in announced:
        if not event.rooms:
            continue  # work for a worker only (a PSA writeback), nothing to show live
        try:
            queue.emit_once(event.id, event.event, event.payload, to=event.rooms)
        except AlreadyEmitted:
            # A worker got there first (the relay re-sent it while this publisher was
            # behind): it is live, and the dispatch need not emit it.
            emitted.append(event.id)
            continue
        except NoWebNodeListening:
            # No web node has a connection yet (each subscribes on its first): nobody to
            # tell now; the dispatch checks presence and says so.
            continue
        except EmitFailed as failure:
            log.warning("Live emit of outbox events from %s failed (%s)", event.id, failure)
            break
        telemetry.observe_since(telemetry.LIVE_FANOUT_LATENCY, event.created_at)
        emitted.append(event.id)
    return emitted


def publish_outbox_events(
    outbox_event_ids: list[int],
    emitted_ids: list[int] = (),
    accounts: dict[int, int] | None = None,
) -> list[int]:
    """Send the dispatch tasks (one message per event, or per batch of events), each with
    its account (`accounts`: event id → account id; read when not given); return the ids
    the broker accepted.

    Bounded in time by the publish retry policy and socket timeouts in workers.settings;
    any broker error is logged, never raised: the outbox relay sends those later."""
    celery = current_app.extensions["celery"]
    emitted = set(emitted_ids)
    if accounts is None:
        accounts = outbox.accounts_of(outbox_event_ids)
    published: list[int] = []
    size = MAX_BATCH if len(outbox_event_ids) >= BATCH_FROM else 1
    for start in range(0, len(outbox_event_ids), size):
        batch = outbox_event_ids[start : start + size]
        try:
            if len(batch) == 1:
                kwargs = {"emitted": batch[0] in emitted, "account_id": accounts.get(batch[0])}
                celery.send_task(DISPATCH_OUTBOX_EVENT, args=batch, kwargs=kwargs)
            else:
                live = [event_id for event_id in batch if event_id in emitted]
                celery.send_task(
                    DISPATCH_OUTBOX_EVENTS,
                    args=[batch, live],
                    kwargs={"account_ids": [accounts.get(event_id) for event_id in batch]},
                    queue=QUEUE_REALTIME,
                )
        except Exception:  # kombu OperationalError, socket errors, timeouts
            log.warning(
                "Broker unreachable; outbox events %s wait for the relay", batch, exc_info=True
            )
            break
        published += batch
    try:
        outbox.mark_published(
            published, [event_id for event_id in published if event_id in emitted]
        )
    except Exception:
        # The tasks went out; at worst the relay sends them again, which is harmless.
        log.warning("Could not mark outbox events %s published", published, exc_info=True)
    return published


def go_live_and_publish(announced: list[Announced]) -> None:
    emitted = emit_live(announced)
    accounts = {event.id: event.account_id for event in announced}
    publish_outbox_events([event.id for event in announced], emitted, accounts)


class BackgroundPublisher:
    """One per web process: commits hand it their events; it publishes what has gathered."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._pending: deque[Announced] = deque()
        self._wake = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def submit(self, announced: list[Announced]) -> None:
        self._pending.extend(announced)
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
            batch: list[Announced] = []
            while self._pending:
                batch.append(self._pending.popleft())
            if not batch:
                continue
            try:
                with self.app.app_context():
                    go_live_and_publish(batch)
            except Exception:  # never let the publisher die; the relay covers the batch
                log.exception("Publishing outbox events %s failed", [e.id for e in batch])


def _on_commit(announced: list[Announced]) -> None:
    if "celery" not in current_app.extensions:
        return  # an app this process did not wire to Celery (one-off scripts)
    publisher = current_app.extensions.get("outbox_publisher")
    if publisher is not None:
        publisher.submit(announced)
    else:
        go_live_and_publish(announced)


def install(app: Flask) -> None:
    """Publish every committed outbox event of this process (inline until
    `publish_in_background` is called)."""
    outbox.on_commit(_on_commit)


def publish_in_background(app: Flask) -> None:
    """From now on this process publishes after the response (wsgi.py, when served)."""
    app.extensions["outbox_publisher"] = BackgroundPublisher(app)

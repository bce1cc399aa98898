"""What the Celery settings (workers/settings.py) give the notification pipeline, shown on
the broker: a broker that refuses or stops answering holds an escalation up for no more
than PUBLISH_TIMEOUT_SECONDS, and the outbox relay sends the task later; each task waits
in the queue of the workers meant for it; a task whose worker process dies goes back to
its queue; a pickled message is never unpickled; a relay tick left waiting is dropped, not
run late.

The same guarantees against a real Redis, worker and SMTP server: tests/integration
(test_realtime.py: Redis stopped and frozen, test_live_while_smtp_hangs.py: the live path
while SMTP hangs, test_email_delivery.py: a worker killed mid-send)."""

from __future__ import annotations

import pickle
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from billiard.einfo import ExceptionInfo
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request
from flask import Flask
from kombu import Consumer
from sqlalchemy import select

from models import db
from models.entities import OutboxEvent
from tests.factories import UNREACHABLE_REDIS, make_tenant, new_handoff, new_session
from workers import fanout, names
from workers.outbox_relay import relay

QUEUES = (names.QUEUE_REALTIME, names.QUEUE_EMAIL, names.QUEUE_MAINTENANCE, names.QUEUE_PSA)
# Beyond PUBLISH_TIMEOUT_SECONDS (the socket waits), for the work around them. The
# whole escalation's bound (1 s) is asserted against a real stack in
# tests/integration/test_realtime.py; in this process a busy machine's pauses (other tests'
# leftovers, garbage collection) would land in it too.
PUBLISH_OVERHEAD_SECONDS = 0.25


def time_spent_publishing(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """How long each of the app's task publishes took (they go through as usual)."""
    celery = app.extensions["celery"]
    original = celery.send_task
    spent: list[float] = []

    def timed(*args, **kwargs):
        started = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.monotonic() - started)

    monkeypatch.setattr(celery, "send_task", timed)
    return spent


def waiting(app: Flask) -> dict[str, list]:
    """Take every message waiting in the app's broker (the in-memory one), by queue."""
    taken: dict[str, list] = {queue: [] for queue in QUEUES}
    with app.extensions["celery"].connection_for_read() as connection:
        channel = connection.channel()
        for queue in QUEUES:
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                taken[queue].append(message)
    return taken


def task_names(messages: list) -> list[str]:
    return [message.headers["task"] for message in messages]


@pytest.fixture
def broker_app(app: Flask) -> Flask:
    """The conftest app (in-memory broker) with every task registered, as in a worker or
    beat, and no message left over from another test (the in-memory broker is shared by
    every app in the process)."""
    app.extensions["celery"].loader.import_default_modules()
    waiting(app)
    return app


@pytest.fixture
def frozen_redis() -> Iterator[str]:
    """A Redis that accepts connections and never answers (as one stopped with SIGSTOP)."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


# --------------------------------------------------------------------------- broker down


@pytest.mark.timeout(30)  # a publish without socket timeouts would wait for ever
@pytest.mark.parametrize("broker", ["refusing", "frozen"])
def test_with_the_broker_down_escalate_answers_at_once_and_the_relay_sends_it_later(
    app_with, broker, request, monkeypatch
):
    url = UNREACHABLE_REDIS if broker == "refusing" else request.getfixturevalue("frozen_redis")
    with app_with(CELERY_BROKER_URL=url) as web:
        tenant = make_tenant("Alpha MSP")
        client = web.test_client()
        session = new_session(client, tenant)
        spent = time_spent_publishing(web, monkeypatch)
        response = client.post(
            f"/api/v1/sessions/{session['id']}/escalate",
            json={"reason": "Broker down"},
            headers=tenant.auth("tech"),
        )
        assert response.status_code == 201, response.get_json()
        bound = web.config["PUBLISH_TIMEOUT_SECONDS"] + PUBLISH_OVERHEAD_SECONDS
        assert spent and sum(spent) < bound, f"publishing took {spent} s"
        event = db.session.scalar(select(OutboxEvent))
        assert (event.event, event.published_at) == ("handoff.created", None)
        event_id = event.id

    # The worker side (beat's relay tick) on the same database, with the broker back.
    with app_with() as worker:
        waiting(worker)
        assert relay(timedelta(0))["published"] == [event_id]
        queued = waiting(worker)
        assert task_names(queued[names.QUEUE_REALTIME]) == [names.DISPATCH_OUTBOX_EVENT]
        assert queued[names.QUEUE_REALTIME][0].decode()[0] == [event_id]
        assert db.session.get(OutboxEvent, event_id).published_at is not None


# --------------------------------------------------------------------------- queues


def test_an_escalations_dispatch_waits_for_the_realtime_workers(broker_app, client, tenant):
    new_handoff(client, tenant, reason="Printer on fire")  # asserts the 201
    queued = waiting(broker_app)
    assert task_names(queued[names.QUEUE_REALTIME]) == [names.DISPATCH_OUTBOX_EVENT]
    assert all(queued[queue] == [] for queue in QUEUES if queue != names.QUEUE_REALTIME)


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        (names.SEND_EMAIL, names.QUEUE_EMAIL),
        (names.SEND_EMAILS, names.QUEUE_EMAIL),
        (names.PSA_POST_NOTE, names.QUEUE_PSA),
        (names.PSA_SYNC_TICKET, names.QUEUE_PSA),
    ],
)
def test_work_that_waits_on_smtp_or_the_psa_stays_off_the_realtime_queue(broker_app, task, queue):
    """A hung SMTP server or PSA holds only the workers of its own queue; the live path
    (`-Q realtime`) never picks such a task up. Sent as the dispatch, a retry and the
    sweeper send them: by name, with or without a countdown."""
    celery = broker_app.extensions["celery"]
    celery.send_task(task, args=[1])
    celery.send_task(task, args=[2], countdown=30)
    queued = waiting(broker_app)
    assert task_names(queued[queue]) == [task, task]
    assert all(queued[other] == [] for other in QUEUES if other != queue)


def test_beat_ticks_stay_off_the_realtime_and_email_queues(broker_app):
    celery = broker_app.extensions["celery"]
    ticks = sorted(entry["task"] for entry in celery.conf.beat_schedule.values())
    for tick in ticks:
        celery.tasks[tick].apply_async()  # as beat sends a registered task
    queued = waiting(broker_app)
    assert queued[names.QUEUE_REALTIME] == queued[names.QUEUE_EMAIL] == []
    assert sorted(task_names(queued[names.QUEUE_MAINTENANCE] + queued[names.QUEUE_PSA])) == ticks


# --------------------------------------------------------------------------- worker side


def take_for_a_worker(app: Flask, queue: str):
    """The next message of `queue`, taken as a worker takes it (to be acknowledged later)."""
    connection = app.extensions["celery"].connection_for_read()
    message = connection.channel().basic_get(queue, no_ack=False)
    assert message is not None
    return connection, message


def test_a_task_whose_worker_process_dies_goes_back_to_its_queue(broker_app):
    """Acknowledged only once it ran, and given back when the pool process running it dies
    (killed, out of memory): the next worker process runs it again."""
    celery = broker_app.extensions["celery"]
    celery.send_task(names.ROLLUP_METRICS)
    connection, message = take_for_a_worker(broker_app, names.QUEUE_MAINTENANCE)
    try:
        # The worker's own request handling, wired to the message as its consumer wires it.
        task = Request(
            message,
            app=celery,
            task=celery.tasks[names.ROLLUP_METRICS],
            on_ack=message.ack_log_error,
            on_reject=message.reject_log_error,
        )
        try:
            raise WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL).")
        except WorkerLostError:
            task.on_failure(ExceptionInfo(), send_failed_event=False)
        # Looked at while the dead worker's connection is still open: closing it would
        # hand back anything unacknowledged by itself.
        back = waiting(broker_app)[names.QUEUE_MAINTENANCE]
    finally:
        connection.release()
    assert task_names(back) == [names.ROLLUP_METRICS]
    # A worker process reserves no task beyond the one it runs, so no other task waits
    # behind a slow one or dies with it.
    assert celery.conf.worker_prefetch_multiplier == 1


class _Tripwire:
    """Unpickling this object records that it happened (as a crafted payload would run code)."""

    tripped: list[str] = []

    def __reduce__(self):
        return (_Tripwire.tripped.append, ("unpickled",))


def test_a_pickled_message_is_refused_never_unpickled(broker_app):
    """Anyone who can write to Redis must not run code in the workers."""
    celery = broker_app.extensions["celery"]
    _Tripwire.tripped.clear()
    with celery.connection_for_write() as connection:
        celery.amqp.Producer(connection).publish(
            pickle.dumps(((_Tripwire(),), {}, {})),
            routing_key=names.QUEUE_REALTIME,
            exchange=names.QUEUE_REALTIME,
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers={"task": names.DISPATCH_OUTBOX_EVENT, "id": "crafted"},
        )
    refused, received = [], []
    with celery.connection_for_read() as connection:
        queue = next(q for q in celery.conf.task_queues if q.name == names.QUEUE_REALTIME)
        consumer = Consumer(
            connection,
            queues=[queue],
            accept=celery.conf.accept_content,  # what the worker's consumer accepts
            callbacks=[lambda body, message: received.append(body)],
            on_decode_error=lambda message, error: refused.append(error),
        )
        with consumer:
            connection.drain_events(timeout=2)
    assert received == [] and len(refused) == 1
    assert _Tripwire.tripped == []


# --------------------------------------------------------------------------- timing


def test_a_relay_tick_left_waiting_past_its_interval_is_dropped(broker_app):
    """A worker back after an outage runs the next relay, not a backlog of stale ones."""
    celery = broker_app.extensions["celery"]
    [interval] = [
        entry["schedule"]
        for entry in celery.conf.beat_schedule.values()
        if entry["task"] == names.RELAY_OUTBOX
    ]
    sent_at = datetime.now(UTC)
    celery.tasks[names.RELAY_OUTBOX].apply_async()  # as beat sends it
    [message] = waiting(broker_app)[names.QUEUE_MAINTENANCE]
    expires = datetime.fromisoformat(message.headers["expires"])
    assert sent_at < expires <= sent_at + interval + timedelta(seconds=1)


def test_no_dispatch_retry_outlives_the_visibility_timeout(broker_app):
    """A task waiting in Redis longer than the visibility timeout is handed out twice."""
    visibility = broker_app.extensions["celery"].conf.broker_transport_options["visibility_timeout"]
    longest = fanout.SOCKET_RETRY.max_backoff_seconds + fanout.COUNTDOWN_MARGIN_SECONDS
    assert longest < visibility

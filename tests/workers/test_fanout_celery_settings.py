"""The Celery settings the notification pipeline relies on (celery_config.settings)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import db
from models.entities import OutboxEvent
from tests.factories import UNREACHABLE_REDIS, app_config, make_tenant, new_session, wired_app
from workers import fanout, names
from workers import settings as celery_config


@pytest.fixture
def conf(app):
    return app.extensions["celery"].conf


def test_work_survives_a_worker_crash(conf):
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1


def test_only_json_goes_over_the_wire(conf):
    assert conf.task_serializer == "json"
    assert list(conf.accept_content) == ["json"]


def test_publishing_is_bounded(conf, app):
    policy = conf.task_publish_retry_policy
    transport = conf.broker_transport_options
    assert conf.task_publish_retry is True
    assert policy["max_retries"] <= 1
    assert policy["interval_start"] == policy["interval_max"] == 0
    # Each try that meets a frozen Redis costs at most a few socket timeouts, and all of them
    # together fit in PUBLISH_TIMEOUT_SECONDS.
    worst = celery_config.TIMEOUTS_PER_STALLED_PUBLISH * transport["socket_timeout"]
    assert worst <= app.config["PUBLISH_TIMEOUT_SECONDS"] + 1e-9
    assert transport["socket_connect_timeout"] == transport["socket_timeout"]
    assert conf.broker_connection_timeout == transport["socket_timeout"]


def test_no_countdown_outlives_the_visibility_timeout(conf):
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert visibility > celery_config.MAX_COUNTDOWN_SECONDS
    longest_socket_retry = fanout.SOCKET_RETRY.max_backoff_seconds + fanout.COUNTDOWN_MARGIN_SECONDS
    assert visibility > longest_socket_retry


def test_each_task_goes_to_its_own_queue(conf):
    routes = conf.task_routes
    assert routes[names.DISPATCH_OUTBOX_EVENT]["queue"] == names.QUEUE_REALTIME
    assert routes[names.SEND_EMAIL]["queue"] == names.QUEUE_EMAIL
    for task in (names.RELAY_OUTBOX, names.SWEEP_DELIVERIES, names.ROLLUP_METRICS):
        assert routes[task]["queue"] == names.QUEUE_MAINTENANCE
    for task in (names.PSA_POST_NOTE, names.PSA_SYNC_TICKET, names.PSA_POLL):
        assert routes[task]["queue"] == names.QUEUE_PSA
    bindings = {q.name: (q.exchange.name, q.routing_key) for q in conf.task_queues}
    assert bindings == {
        name: (name, name)
        for name in (
            names.QUEUE_REALTIME,
            names.QUEUE_EMAIL,
            names.QUEUE_MAINTENANCE,
            names.QUEUE_PSA,
        )
    }


def test_the_relay_runs_every_five_seconds_and_drops_stale_ticks(conf):
    [entry] = [e for e in conf.beat_schedule.values() if e["task"] == names.RELAY_OUTBOX]
    assert entry["schedule"] == timedelta(seconds=5)
    from workers.outbox_relay import relay_outbox

    assert relay_outbox.expires == 5


def test_with_the_broker_refusing_escalate_still_answers_201_and_leaves_it_to_the_relay(
    database_url,
):
    app = wired_app(app_config(database_url, CELERY_BROKER_URL=UNREACHABLE_REDIS))
    with app.app_context():
        db.create_all()
        tenant = make_tenant("Alpha MSP")
        client = app.test_client()
        session = new_session(client, tenant)
        response = client.post(
            f"/api/v1/sessions/{session['id']}/escalate",
            json={"reason": "Broker down"},
            headers=tenant.auth("tech"),
        )
        assert response.status_code == 201
        event = db.session.scalar(select(OutboxEvent))
        assert (event.event, event.published_at) == ("handoff.created", None)
        db.session.remove()
        db.engine.dispose()


def test_the_worker_and_beat_wait_longer_on_redis_than_the_web_process(app, conf):
    """Short timeouts bound the web's publish; inside the worker's consume loop a timed-out
    command can wedge it (the frozen-Redis integration test shows what this prevents)."""
    worker = celery_config.worker_settings(app.config)
    web_timeout = conf.broker_transport_options["socket_timeout"]
    worker_transport = worker["broker_transport_options"]
    assert worker_transport["socket_timeout"] == celery_config.WORKER_SOCKET_TIMEOUT_SECONDS
    assert worker_transport["socket_timeout"] >= 10 * web_timeout
    # Everything else about the broker is the same on both sides.
    same = {k: v for k, v in worker_transport.items() if not k.startswith("socket_")}
    assert same == {
        k: v for k, v in conf.broker_transport_options.items() if not k.startswith("socket_")
    }

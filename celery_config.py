"""The Celery app for `celery -A celery_config worker|beat`: settings, routes and the beat
schedule in one place."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from kombu import Exchange, Queue

from web import create_app
from web.config import ROOT
from workers import names
from workers.serialization import use_finite_json

# Task payloads: JSON with finite numbers only (a NaN in a payload fails at the sender).
use_finite_json()

# Longest countdown a task may ask for (email backoff caps at 10 minutes); the Redis
# visibility timeout must stay above it or a waiting task is delivered twice.
MAX_COUNTDOWN_SECONDS = 600
VISIBILITY_TIMEOUT_SECONDS = 3600
# How long the web process may spend handing one task to the broker, all tries included.
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 0.5
PUBLISH_ATTEMPTS = 2
# A Redis that stopped answering (frozen, cut off) costs up to this many socket timeouts per
# publish: the command, then redis-py's own reconnect and health-check retries.
TIMEOUTS_PER_STALLED_PUBLISH = 3
# The worker and beat (`celery -A celery_config ...`) wait longer on Redis than the web
# process. A command that times out inside the worker's consume loop can leave kombu's
# poller waiting for a BRPOP reply that never comes: measured, the worker stopped consuming
# for good after Redis was frozen (SIGSTOP) for ~1-2 s with 0.17 s and with 1 s timeouts,
# and never with 20 s. A Redis that is stopped or restarted refuses at once either way.
WORKER_SOCKET_TIMEOUT_SECONDS = 30.0

BEAT_SCHEDULE = {
    "relay-outbox": {"task": names.RELAY_OUTBOX, "schedule": timedelta(seconds=5)},
    "sweep-deliveries": {"task": names.SWEEP_DELIVERIES, "schedule": timedelta(seconds=30)},
    "rollup-metrics": {"task": names.ROLLUP_METRICS, "schedule": timedelta(seconds=30)},
}


def settings(config: Any) -> dict[str, Any]:
    # A Redis command answers in well under a millisecond on a LAN; one that has not
    # answered in this time is talking to a Redis that is frozen or cut off (a stopped one
    # refuses at once). The worker's blocking fetch (BRPOP) is event-driven, not bound by it.
    publish_timeout = float(
        config.get("PUBLISH_TIMEOUT_SECONDS") or DEFAULT_PUBLISH_TIMEOUT_SECONDS
    )
    socket_timeout = publish_timeout / TIMEOUTS_PER_STALLED_PUBLISH
    return {
        "broker_url": config.get("CELERY_BROKER_URL") or config["REDIS_URL"],
        "result_backend": None,
        "task_ignore_result": True,
        "include": ["workers.fanout", "workers.email", "workers.outbox_relay", "workers.rollup"],
        # Never lose work to a crash: ack after the task ran, and requeue if the worker died.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Publishing must fail fast when Redis is down (PUBLISH_TIMEOUT_SECONDS in all): a
        # second try at once for a dropped pooled connection, then kombu's OperationalError,
        # which workers.publish catches; the outbox relay sends it later.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": PUBLISH_ATTEMPTS - 1,
            "interval_start": 0,
            "interval_step": 0,
            "interval_max": 0,
        },
        "broker_connection_timeout": socket_timeout,
        "broker_connection_retry_on_startup": True,
        # A worker that lost Redis keeps trying to reconnect (None: forever), not exit.
        "broker_connection_max_retries": None,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
            "max_retries": PUBLISH_ATTEMPTS - 1,
        },
        "task_routes": {
            names.DISPATCH_OUTBOX_EVENT: {"queue": names.QUEUE_REALTIME},
            names.SEND_EMAIL: {"queue": names.QUEUE_EMAIL},
            names.RELAY_OUTBOX: {"queue": names.QUEUE_MAINTENANCE},
            names.SWEEP_DELIVERIES: {"queue": names.QUEUE_MAINTENANCE},
            names.ROLLUP_METRICS: {"queue": names.QUEUE_MAINTENANCE},
        },
        # One direct exchange and routing key per queue, so a worker can be given any of them
        # (`-Q realtime` for a fan-out-only worker) and nothing lands in a queue by accident.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (names.QUEUE_REALTIME, names.QUEUE_EMAIL, names.QUEUE_MAINTENANCE)
        ],
        "task_default_queue": names.QUEUE_REALTIME,
        "beat_schedule": BEAT_SCHEDULE,
        "beat_schedule_filename": _beat_schedule_file(),
        "timezone": "UTC",
    }


def _beat_schedule_file() -> str:
    (ROOT / "var").mkdir(exist_ok=True)
    return str(ROOT / "var" / "celerybeat-schedule")


def worker_settings(config: Any) -> dict[str, Any]:
    """What the worker and beat change in `settings`: patient Redis sockets (see above)."""
    transport = dict(settings(config)["broker_transport_options"])
    transport.update(
        socket_timeout=WORKER_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=WORKER_SOCKET_TIMEOUT_SECONDS,
        socket_keepalive=True,
    )
    return {
        "broker_transport_options": transport,
        "broker_connection_timeout": WORKER_SOCKET_TIMEOUT_SECONDS,
    }


@cache
def _worker_app():
    flask_app = create_app()
    celery = flask_app.extensions["celery"]
    celery.conf.update(worker_settings(flask_app.config))
    return celery


def __getattr__(name: str):
    """`celery -A celery_config` asks for `app`: build it (with its Flask app) on first use,
    so the web process can read `settings` here without creating a second app."""
    if name in {"app", "celery"}:
        return _worker_app()
    raise AttributeError(name)

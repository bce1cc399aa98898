"""Celery's settings for this project: broker behaviour, queues and routes, the beat
schedule. The web process (publishing) and the workers (consuming) share them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from kombu import Exchange, Queue

from adapters.broadcast import DEFAULT_PUBLISH_TIMEOUT_SECONDS
from workers import names

# Longest countdown a task may ask for (email backoff caps at 10 minutes); the Redis
# visibility timeout must stay above it or a waiting task is delivered twice.
MAX_COUNTDOWN_SECONDS = 600
VISIBILITY_TIMEOUT_SECONDS = 3600
# How long the web process may spend handing one task to the broker, all tries included:
# DEFAULT_PUBLISH_TIMEOUT_SECONDS (adapters.broadcast) unless PUBLISH_TIMEOUT_SECONDS says.
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
    # Every 5 s: email retries lost with a Redis restart go out within the grace period + 5 s.
    "sweep-deliveries": {"task": names.SWEEP_DELIVERIES, "schedule": timedelta(seconds=5)},
    "rollup-metrics": {"task": names.ROLLUP_METRICS, "schedule": timedelta(seconds=30)},
    "psa-poll": {"task": names.PSA_POLL, "schedule": timedelta(seconds=60)},
    "handoff-steps": {"task": names.RUN_HANDOFF_STEPS, "schedule": timedelta(seconds=15)},
    # A shift's notice goes out within this long of its start.
    "shift-notices": {"task": names.SHIFT_NOTICES, "schedule": timedelta(seconds=60)},
}


def beat_schedule(config: Any) -> dict[str, Any]:
    """BEAT_SCHEDULE, with the unclaimed-steps tick shortened when tests ask for it."""
    schedule = {name: dict(entry) for name, entry in BEAT_SCHEDULE.items()}
    if seconds := config.get("HANDOFF_STEPS_INTERVAL_SECONDS"):
        schedule["handoff-steps"]["schedule"] = timedelta(seconds=float(seconds))
    if seconds := config.get("SHIFT_NOTICES_INTERVAL_SECONDS"):
        schedule["shift-notices"]["schedule"] = timedelta(seconds=float(seconds))
    return schedule


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
        "include": [
            "workers.fanout",
            "workers.mail",
            "workers.outbox_relay",
            "workers.rollup",
            "workers.psa",
            "workers.handoff_steps",
            "workers.shift_notices",
        ],
        # Never lose work to a crash: ack after the task ran, and requeue if the worker died.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        **_broker(socket_timeout),
        **_routing(),
        "task_default_queue": names.QUEUE_REALTIME,
        "beat_schedule": beat_schedule(config),
        "beat_schedule_filename": _beat_schedule_file(),
        "timezone": "UTC",
    }


def _broker(socket_timeout: float) -> dict[str, Any]:
    """Talking to Redis: bounded publishing from the web process, reconnecting forever."""
    return {
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
    }


def _routing() -> dict[str, Any]:
    """Which queue each task goes to, and the queues themselves."""
    return {
        "task_routes": {
            names.DISPATCH_OUTBOX_EVENT: {"queue": names.QUEUE_REALTIME},
            names.SEND_EMAIL: {"queue": names.QUEUE_EMAIL},
            names.SEND_EMAILS: {"queue": names.QUEUE_EMAIL},
            names.RELAY_OUTBOX: {"queue": names.QUEUE_MAINTENANCE},
            names.SWEEP_DELIVERIES: {"queue": names.QUEUE_MAINTENANCE},
            names.ROLLUP_METRICS: {"queue": names.QUEUE_MAINTENANCE},
            names.PSA_POST_NOTE: {"queue": names.QUEUE_PSA},
            names.PSA_SYNC_TICKET: {"queue": names.QUEUE_PSA},
            names.PSA_POLL: {"queue": names.QUEUE_PSA},
            names.RUN_HANDOFF_STEPS: {"queue": names.QUEUE_MAINTENANCE},
            names.SHIFT_NOTICES: {"queue": names.QUEUE_MAINTENANCE},
        },
        # One direct exchange and routing key per queue, so a worker can be given any of them
        # (`-Q realtime` for a fan-out-only worker) and nothing lands in a queue by accident.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (
                names.QUEUE_REALTIME,
                names.QUEUE_EMAIL,
                names.QUEUE_MAINTENANCE,
                names.QUEUE_PSA,
            )
        ],
    }


def _beat_schedule_file() -> str:
    var = Path(__file__).resolve().parent.parent / "var"
    var.mkdir(exist_ok=True)
    return str(var / "celerybeat-schedule")


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
        # No remote control (`celery inspect` / `control`): its mailbox is a fanout queue
        # that the worker deletes when it drops a broken connection. With Redis gone that
        # fails half-way, and the retry of the close then restores the unacknowledged
        # messages through a transport already torn down: "Unrecoverable error:
        # AttributeError('NoneType' object has no attribute 'hostname')" and the worker
        # exits. Gossip uses such a queue too (hence --without-gossip). docs/deploy.md.
        "worker_enable_remote_control": False,
    }

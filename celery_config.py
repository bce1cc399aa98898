"""The Celery app for `celery -A celery_config worker|beat`: settings, routes and the beat
schedule in one place."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from kombu import Queue

from web import create_app
from web.config import ROOT
from workers import names

# Longest countdown a task may ask for (email backoff caps at 10 minutes); the Redis
# visibility timeout must stay above it or a waiting task is delivered twice.
MAX_COUNTDOWN_SECONDS = 600
VISIBILITY_TIMEOUT_SECONDS = 3600

BEAT_SCHEDULE = {
    "relay-outbox": {"task": names.RELAY_OUTBOX, "schedule": timedelta(seconds=5)},
    "sweep-deliveries": {"task": names.SWEEP_DELIVERIES, "schedule": timedelta(seconds=30)},
    "rollup-metrics": {"task": names.ROLLUP_METRICS, "schedule": timedelta(seconds=30)},
}


def settings(config: Any) -> dict[str, Any]:
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
        # Publishing must fail fast when Redis is down; the outbox relay sends it later.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.1,
            "interval_max": 0.1,
        },
        "broker_connection_timeout": 1.0,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
            "max_retries": 1,
        },
        "task_routes": {
            names.DISPATCH_OUTBOX_EVENT: {"queue": names.QUEUE_REALTIME},
            names.SEND_EMAIL: {"queue": names.QUEUE_EMAIL},
            names.RELAY_OUTBOX: {"queue": names.QUEUE_MAINTENANCE},
            names.SWEEP_DELIVERIES: {"queue": names.QUEUE_MAINTENANCE},
            names.ROLLUP_METRICS: {"queue": names.QUEUE_MAINTENANCE},
        },
        "task_queues": [
            Queue(names.QUEUE_REALTIME),
            Queue(names.QUEUE_EMAIL),
            Queue(names.QUEUE_MAINTENANCE),
        ],
        "task_default_queue": names.QUEUE_REALTIME,
        "beat_schedule": BEAT_SCHEDULE,
        "beat_schedule_filename": _beat_schedule_file(),
        "timezone": "UTC",
    }


def _beat_schedule_file() -> str:
    (ROOT / "var").mkdir(exist_ok=True)
    return str(ROOT / "var" / "celerybeat-schedule")


@cache
def _worker_app():
    return create_app().extensions["celery"]


def __getattr__(name: str):
    """`celery -A celery_config` asks for `app`: build it (with its Flask app) on first use,
    so the web process can read `settings` here without creating a second app."""
    if name in {"app", "celery"}:
        return _worker_app()
    raise AttributeError(name)

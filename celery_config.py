"""The Celery entry point for `celery -A celery_config worker|beat`: it wires the web
app's configuration, database and Socket.IO settings to the Celery app. Settings, queues and
the beat schedule live in workers/settings.py."""

from __future__ import annotations

import os
import sys
from functools import cache

from web import create_app
from workers import celery_init_app, routine_logs
from workers.serialization import use_finite_json
from workers.settings import worker_settings

# Task payloads: JSON with finite numbers only (a NaN in a payload fails at the sender).
use_finite_json()

# Routine beat ticks (relay, sweep, rollup) are not worth an INFO line every few seconds.
routine_logs.install()


def _process_type() -> str:
    """ "worker" or "beat" (PROCESS_TYPE when set): picks pool sizes and log labels."""
    if os.environ.get("PROCESS_TYPE"):
        return os.environ["PROCESS_TYPE"]
    return "beat" if "beat" in sys.argv[1:] else "worker"


@cache
def _worker_app():
    from workers.observability import connect_worker_side

    process_type = _process_type()
    flask_app = create_app({"PROCESS_TYPE": process_type})
    celery = celery_init_app(flask_app)
    celery.conf.update(worker_settings(flask_app.config))
    connect_worker_side(flask_app, process_type)
    return celery


def __getattr__(name: str):
    """`celery -A celery_config` asks for `app`: build it (with its Flask app) on first use,
    so importing this module creates nothing."""
    if name in {"app", "celery"}:
        return _worker_app()
    raise AttributeError(name)

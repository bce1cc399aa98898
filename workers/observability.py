"""The Celery side of observability: ids in task headers, logging, metrics, fork safety.

- Every task message carries the request id and handoff id of whoever sent it (headers
  named in models.logcontext); the task binds them before it runs, so its log lines, and
  the tasks it sends in turn, name them too. A task that beat sends gets an id of its own.
- Worker and beat log through models.logcontext (JSON when LOG_FORMAT=json).
- A prefork child starts with fresh database connections (a connection must never be
  shared across fork) and, with PROMETHEUS_MULTIPROC_DIR, its metric files are retired
  when it exits. WORKER_METRICS_PORT serves the worker's own /metrics (every child's
  counters) for deployments where the worker runs on a box without a web node.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from functools import cache
from typing import Any

from celery import signals
from flask import Flask

from adapters import telemetry as metrics
from models import logcontext
from workers import routine_logs

log = logging.getLogger(__name__)

_tokens: dict[str, tuple[Any, Any]] = {}
_publish_side_connected = False


def connect_publish_side(process_type: str) -> None:
    """Every process that sends tasks (web, worker, beat): put the ids in the headers.
    Once per process, however many apps it creates."""
    global _publish_side_connected
    if _publish_side_connected:
        return
    _publish_side_connected = True

    def add_ids(headers: dict | None = None, **_: Any) -> None:
        if headers is None:
            return
        request_id = logcontext.REQUEST_ID.get()
        if request_id is None and process_type == "beat":
            request_id = f"beat-{uuid.uuid4().hex[:12]}"
        if request_id is not None:
            headers.setdefault(logcontext.REQUEST_ID_HEADER, request_id)
        handoff_id = logcontext.HANDOFF_ID.get()
        if handoff_id is not None:
            headers.setdefault(logcontext.HANDOFF_ID_HEADER, handoff_id)

    signals.before_task_publish.connect(add_ids, weak=False)


def _bind_ids(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    request_id = request.get(logcontext.REQUEST_ID_HEADER) if request is not None else None
    handoff_id = request.get(logcontext.HANDOFF_ID_HEADER) if request is not None else None
    _tokens[task_id or ""] = (
        logcontext.REQUEST_ID.set(request_id or task_id),
        logcontext.HANDOFF_ID.set(int(handoff_id) if handoff_id is not None else None),
    )


def _unbind_ids(task_id: str | None = None, **_: Any) -> None:
    tokens = _tokens.pop(task_id or "", None)
    if tokens is not None:
        logcontext.REQUEST_ID.reset(tokens[0])
        logcontext.HANDOFF_ID.reset(tokens[1])


def connect_worker_side(flask_app: Flask, process_type: str) -> None:
    """Worker and beat processes only (celery_config): logging, ids, fork safety, metrics."""

    def setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
        level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
        logcontext.configure_logging(
            flask_app.config.get("LOG_FORMAT") or "text", process_type, level or logging.INFO
        )
        routine_logs.quiet_handlers()  # the relay, sweep and rollup ticks stay out of INFO

    def fresh_connections(**_: Any) -> None:
        from models.db import db

        with flask_app.app_context():
            db.engine.dispose(close=False)

    def retire_metric_files(pid: int | None = None, **_: Any) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid or os.getpid())

    def serve_metrics(**_: Any) -> None:
        port = os.environ.get("WORKER_METRICS_PORT")
        if port:
            start_worker_exporter(int(port))

    # Connecting setup_logging also stops Celery from installing its own root handlers.
    signals.setup_logging.connect(setup_logging, weak=False)
    signals.task_prerun.connect(_bind_ids, weak=False)
    signals.task_postrun.connect(_unbind_ids, weak=False)
    signals.worker_process_init.connect(fresh_connections, weak=False)
    signals.worker_process_shutdown.connect(retire_metric_files, weak=False)
    signals.worker_init.connect(serve_metrics, weak=False)


def start_worker_exporter(port: int) -> None:
    """Serve this worker's metrics (all prefork children's, via PROMETHEUS_MULTIPROC_DIR)."""
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    host = os.environ.get("WORKER_METRICS_HOST") or "127.0.0.1"
    start_http_server(port, addr=host, registry=registry)
    log.info("Worker metrics on http://%s:%s/metrics", host, port)


@cache
def _tick_client(redis_url: str):
    from adapters.presence import redis_client

    return redis_client(redis_url)


def stamp_beat_tick(redis_url: str) -> None:
    """Record that a beat-scheduled task ran now (the "no beat tick" alert watches it)."""
    try:
        _tick_client(redis_url).set(metrics.BEAT_TICK_KEY, f"{time.time():.3f}")
    except Exception as error:  # Redis down: the next tick stamps it
        log.warning("Could not record the beat tick: %s", error)

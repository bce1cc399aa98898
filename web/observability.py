"""What an operator watches: request ids, GET /metrics, GET /readyz, and the 503 answer
while the database is unreachable (docs/deploy.md)."""

from __future__ import annotations

import hmac
import logging
import os
import re
import uuid
from typing import Any

import redis
from flask import Flask, Response, current_app, g, jsonify, make_response, request
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

from adapters import telemetry as metrics
from models import outbox, tenancy
from models.db import database_unreachable, db, utcnow
from models.logcontext import HANDOFF_ID, REQUEST_ID
from web import errors
from web.error_pages import render_error_page

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# What a client is told to wait before trying again while the database is unreachable.
RETRY_AFTER_SECONDS = 5
# Redis as seen from a probe or a scrape: a live Redis answers in well under a millisecond.
PROBE_TIMEOUT_SECONDS = 0.5
# kombu's Redis transport keeps a queue's messages of priority N>0 in "<queue>\x06\x16<N>".
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)


def init_observability(app: Flask) -> None:
    _init_proxy_fix(app)
    metrics.watch_domain()
    app.before_request(_bind_request_id)
    app.after_request(_echo_request_id)
    app.teardown_request(_unbind_request_id)
    app.register_error_handler(sa_exc.DBAPIError, _database_error)
    app.register_error_handler(sa_exc.TimeoutError, _database_error)
    app.register_error_handler(sa_exc.PendingRollbackError, _database_error)
    app.add_url_rule("/metrics", "metrics", _metrics)
    app.add_url_rule("/readyz", "readyz", _readyz)


def _init_proxy_fix(app: Flask) -> None:
    """Trust as many proxies per X-Forwarded-* header as configured (0: none, the default)."""
    hops = {
        part: int(app.config.get(f"PROXY_FIX_X_{part.upper()}") or 0)
        for part in ("for", "proto", "host", "port", "prefix")
    }
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **{f"x_{k}": v for k, v in hops.items()})


# ------------------------------------------------------------------------- request ids


def _bind_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.request_id = request_id
    # A keep-alive connection serves several requests on one green thread: start clean.
    g.request_id_token = REQUEST_ID.set(request_id), HANDOFF_ID.set(None)


def _echo_request_id(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _unbind_request_id(_error: BaseException | None = None) -> None:
    tokens = g.pop("request_id_token", None)
    if tokens is not None:
        REQUEST_ID.reset(tokens[0])
        HANDOFF_ID.reset(tokens[1])


# ------------------------------------------------------------------------- database down


def _database_error(error: Exception):
    if not database_unreachable(error):
        response = errors.handle_unexpected(error)
        return response if errors.wants_json() else render_error_page(500, "Something went wrong.")
    log.warning("Database unavailable on %s %s: %s", request.method, request.path, error.args)
    metrics.DATABASE_UNAVAILABLE.inc()
    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the session is removed at teardown anyway
        log.debug("Rollback after a database fault failed", exc_info=True)
    message = "The service is briefly unavailable; try again in a few seconds."
    if errors.wants_json():
        response = errors.error_response(503, "unavailable", message)
    else:
        response = make_response(render_error_page(503, message))
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


# ------------------------------------------------------------------------- readiness


def probe_redis(url: str) -> str:
    """'ok' when Redis answers a PING within the probe timeout, else 'unreachable'."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT_SECONDS, socket_timeout=PROBE_TIMEOUT_SECONDS
    )
    try:
        client.ping()
        return "ok"
    except (redis.RedisError, OSError):
        return "unreachable"
    finally:
        client.close()


def probe_database() -> str:
    """'ok' when the database answers a SELECT 1, else 'unreachable' (logged, and the
    session rolled back so the next request starts clean)."""
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except Exception as error:  # any failure means "not ready"; say which
        log.warning("Probe: database unreachable: %s", error)
        try:
            db.session.rollback()
        except Exception:
            log.debug("Rollback after a failed probe failed", exc_info=True)
        return "unreachable"


def tenant_isolation(app: Flask) -> tenancy.Isolation | None:
    """Whether the database keeps tenants apart (models.tenancy), read once per process
    and again after a failed read; None while the database cannot say."""
    known = app.extensions.get("tenant_isolation")
    if known is not None:
        return known
    try:
        known = tenancy.isolation_status()
    except Exception as error:
        log.warning("Could not read the database roles for tenant isolation: %s", error)
        return None
    app.extensions["tenant_isolation"] = known
    return known


def log_tenant_isolation(app: Flask) -> None:
    """The web's start-up line: the same as /readyz says."""
    with app.app_context():
        isolation = tenant_isolation(app)
    if isolation is None:
        log.warning("Tenant isolation in the database: unknown (database unreachable)")
    elif isolation.state == "enforced":
        log.info(isolation.log_line())
    else:
        log.warning(isolation.log_line())


def _readyz():
    """200 while the database and Redis both answer, else 503 naming what failed; and
    whether the database itself keeps tenants apart."""
    checks = {"database": probe_database(), "redis": probe_redis(current_app.config["REDIS_URL"])}
    failed = [name for name, status in checks.items() if status != "ok"]
    body = {"status": "unavailable" if failed else "ok", **checks, "failed": failed}
    isolation = tenant_isolation(current_app) if checks["database"] == "ok" else None
    if isolation is None:
        isolation = tenancy.Isolation("off", "the database cannot be reached")
    body.update(isolation.as_dict())
    response = jsonify(body)
    response.status_code = 503 if failed else 200
    if failed:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


# ------------------------------------------------------------------------- metrics


class SharedStateCollector:
    """Gauges read at scrape time from what every process shares: Redis and the database."""

    def __init__(self, redis_url: str, queues: list[str]) -> None:
        self.redis_url = redis_url
        self.queues = queues  # the Celery queues the entry points configured

    def collect(self):
        yield from self._redis_gauges()
        yield from self._outbox_gauge()

    def _redis_gauges(self):
        client = redis.Redis.from_url(
            self.redis_url,
            socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
            socket_timeout=PROBE_TIMEOUT_SECONDS,
        )
        try:
            pipe = client.pipeline(transaction=False)
            for queue in self.queues:
                for step in _PRIORITY_STEPS:
                    pipe.llen(queue if step == 0 else f"{queue}{_PRIORITY_SEPARATOR}{step}")
            pipe.hlen("unacked")
            pipe.get(metrics.BEAT_TICK_KEY)
            results = pipe.execute()
        except (redis.RedisError, OSError) as error:
            log.warning("Metrics: Redis unreachable: %s", error)
            return
        finally:
            client.close()
        depth = GaugeMetricFamily(
            metrics.QUEUE_DEPTH, "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        steps = len(_PRIORITY_STEPS)
        for index, queue in enumerate(self.queues):
            depth.add_metric([queue], sum(results[index * steps : (index + 1) * steps]))
        yield depth
        yield GaugeMetricFamily(
            f"{metrics.PREFIX}_celery_unacked",
            "Tasks a worker holds without having acknowledged them (retries waiting included).",
            value=results[-2],
        )
        if results[-1] is not None:
            yield GaugeMetricFamily(
                metrics.BEAT_LAST_TICK,
                "When a beat-scheduled task last ran (Unix time).",
                value=float(results[-1]),
            )

    def _outbox_gauge(self):
        try:
            oldest = outbox.oldest_undispatched_at()
        except Exception as error:
            log.warning("Metrics: database unreachable: %s", error)
            db.session.rollback()
            return
        age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        yield GaugeMetricFamily(
            metrics.OUTBOX_BACKLOG_AGE,
            "Age of the oldest handoff event whose live dispatch has not finished (0: none).",
            value=age,
        )


def _authorized(token: str) -> bool:
    if not token:
        return True
    supplied = request.headers.get("Authorization", "")
    return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())


def _metrics():
    if not _authorized(current_app.config.get("METRICS_TOKEN") or ""):
        response = errors.error_response(401, "unauthorized", "A valid metrics token is required.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    shared = CollectorRegistry(auto_describe=False)
    celery = current_app.extensions.get("celery")
    queues = [queue.name for queue in celery.conf.task_queues or ()] if celery else []
    shared.register(SharedStateCollector(current_app.config["REDIS_URL"], queues))  # type: ignore[arg-type]
    body = _process_metrics() + generate_latest(shared)
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _process_metrics() -> bytes:
    """This process's counters, or with PROMETHEUS_MULTIPROC_DIR every process's on the box."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry: Any = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)

"""The HTTP and Socket.IO edge: `create_app(config)` builds the Flask app."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify
from sqlalchemy import create_engine
from werkzeug.exceptions import HTTPException

from models import tenancy
from models.errors import DomainError
from models.handoff_steps import POLICY_MINUTE_SECONDS, set_policy_minute
from web import config as config_module
from web import errors, finite_json
from web.api.rate_limit import init_api_rate_limit
from web.error_pages import render_error_page
from web.extensions import csrf, db, limiter, migrate, socketio
from web.finite_json import FiniteJSONProvider
from web.observability import init_observability, probe_database, probe_redis
from web.secret_key import require_secret_key
from web.security_headers import init_security_headers
from web.test_clock import init_test_clock

log = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.json = FiniteJSONProvider(app)
    app.config.update(config_module.from_env())
    if config:
        app.config.update(config)
    if not app.config.get("TESTING"):
        require_secret_key(app.config.get("SECRET_KEY"), config_module.ROOT)
    for name in ("SQLALCHEMY_DATABASE_URI", "MIGRATION_DATABASE_URL", "SYSTEM_DATABASE_URL"):
        app.config[name] = config_module.normalize_database_url(str(app.config.get(name) or ""))
    if "SQLALCHEMY_ENGINE_OPTIONS" not in (config or {}):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = config_module.engine_options(
            app.config, app.config.get("PROCESS_TYPE") or "web"
        )
    # Test-only: end-to-end tests shorten the policy's minutes to seconds, and may set the
    # time every process reads (refused outside tests and local development).
    set_policy_minute(float(app.config.get("POLICY_MINUTE_SECONDS") or POLICY_MINUTE_SECONDS))
    init_test_clock(app.config)

    db.init_app(app)
    _init_tenancy(app)
    migrate.init_app(app, db, directory=str(config_module.ROOT / "migrations"))
    _init_socketio(app)

    from web.realtime import register_realtime

    register_realtime(app)

    from web.api import init_api

    init_api(app)
    _register_error_handlers(app)
    _register_health(app)
    init_observability(app)
    init_security_headers(app)
    init_api_rate_limit(app)

    from web.pages import init_pages

    csrf.init_app(app)
    limiter.init_app(app)
    init_pages(app)

    from web.cli import register_cli

    register_cli(app)
    return app


def _init_tenancy(app: Flask) -> None:
    """Tenant isolation (models/tenancy.py): every transaction names its tenant, and the
    system role gets an engine of its own when it has a URL of its own."""
    system_url = app.config["SYSTEM_DATABASE_URL"]
    with app.app_context():
        system_engine = None
        if system_url and system_url != app.config["SQLALCHEMY_DATABASE_URI"]:
            options = config_module.system_engine_options(
                app.config, app.config.get("PROCESS_TYPE") or "web"
            )
            system_engine = create_engine(system_url, **options)
        tenancy.install(db.engine, system_engine)
    # Each request starts with no tenant (resolving the caller names it: web.auth) and
    # leaves none behind for the next request its green thread serves.
    app.before_request(_start_tenancy)
    app.teardown_request(_end_tenancy)


def _start_tenancy() -> None:
    g.tenancy_tokens = tenancy.start_unit()


def _end_tenancy(_error: BaseException | None = None) -> None:
    tokens = g.pop("tenancy_tokens", None)
    if tokens is not None:
        tenancy.end_unit(tokens)


def _init_socketio(app: Flask) -> None:
    message_queue = app.config["SOCKETIO_MESSAGE_QUEUE"]
    socketio.init_app(
        app,
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
        message_queue=message_queue or None,
        channel=app.config["SOCKETIO_CHANNEL"],
        # None: a browser may connect from this site's own origin only (a page elsewhere
        # must not open a socket riding on the login cookie).
        cors_allowed_origins=None,
        # Packets in and out: finite numbers only (web/finite_json.py).
        json=finite_json,
    )
    if app.config["SOCKETIO_ASYNC_MODE"] == "eventlet":
        app.before_request(_take_turns)


def _take_turns() -> None:
    """Yield to the other requests before serving this one.

    Under eventlet one hub runs every connection, and a keep-alive connection whose next
    request is already waiting is served again without ever yielding: under load a few
    connections were served over and over while the rest waited (at 16 connections, p50
    1 ms and p99 over 270 ms for a one-row insert). Taking turns evens that out."""
    socketio.sleep(0)


def _register_error_handlers(app: Flask) -> None:
    def domain_error(error: DomainError):
        if errors.wants_json():
            return errors.handle_domain_error(error)
        return render_error_page(error.status, error.message)

    def http_error(error: HTTPException):
        if errors.wants_json():
            return errors.handle_http_exception(error)
        return render_error_page(error.code or 500, error.description or error.name)

    def unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        response = errors.handle_unexpected(error)
        return response if errors.wants_json() else render_error_page(500, "Something went wrong.")

    app.register_error_handler(DomainError, domain_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)


def _register_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz():
        """200 while the database answers; Redis reachability is reported, not required."""
        database = probe_database()
        redis_status = probe_redis(app.config["REDIS_URL"])
        status = "ok" if database == "ok" else "unavailable"
        body = {"status": status, "database": database, "redis": redis_status}
        if database == "ok":
            body["psa"] = _psa_status()
        return jsonify(body), 200 if database == "ok" else 503


def _psa_status() -> dict:
    """PSA connections whose keys the PSA refused: an admin must save new ones."""
    from models.psa.connection import broken_accounts

    try:
        broken = broken_accounts()
    except Exception:
        log.exception("Health check: could not read the PSA connections")
        db.session.rollback()
        return {"status": "unknown"}
    return {"status": "degraded" if broken else "ok", "broken_connections": broken}

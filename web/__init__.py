"""The HTTP and Socket.IO edge: `create_app(config)` builds the Flask app."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from models.errors import DomainError
from web import config as config_module
from web import errors, finite_json
from web.api.rate_limit import init_api_rate_limit
from web.extensions import csrf, db, limiter, migrate, socketio
from web.finite_json import FiniteJSONProvider
from web.secret_key import require_secret_key
from web.security_headers import init_security_headers
from workers import celery_init_app

log = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.json = FiniteJSONProvider(app)
    app.config.update(config_module.from_env())
    if config:
        app.config.update(config)
    if not app.config.get("TESTING"):
        require_secret_key(app.config.get("SECRET_KEY"), config_module.ROOT)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(config_module.ROOT / "migrations"))
    celery_init_app(app)
    _init_socketio(app)

    from web.realtime import register_realtime

    register_realtime(app)

    from web.api import init_api

    init_api(app)
    _register_error_handlers(app)
    _register_health(app)
    init_security_headers(app)
    init_api_rate_limit(app)

    from web.pages import init_pages

    csrf.init_app(app)
    limiter.init_app(app)
    init_pages(app)

    from web.cli import register_cli

    register_cli(app)
    return app


def _init_socketio(app: Flask) -> None:
    message_queue = app.config.get("SOCKETIO_MESSAGE_QUEUE", app.config["REDIS_URL"])
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


def _register_error_handlers(app: Flask) -> None:
    def domain_error(error: DomainError):
        if errors.wants_json():
            return errors.handle_domain_error(error)
        return _page_error(error.status, error.message)

    def http_error(error: HTTPException):
        if errors.wants_json():
            return errors.handle_http_exception(error)
        return _page_error(error.code or 500, error.description or error.name)

    def unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        response = errors.handle_unexpected(error)
        return response if errors.wants_json() else _page_error(500, "Something went wrong.")

    app.register_error_handler(DomainError, domain_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)


def _page_error(status: int, message: str):
    """HTML pages register a nicer version of this (web.pages); the API never gets here."""
    from flask import current_app

    render = current_app.extensions.get("page_error")
    if render is not None:
        return render(status, message)
    return message, status, {"Content-Type": "text/plain; charset=utf-8"}


def _register_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz():
        """200 while the database answers; Redis reachability is reported, not required."""
        try:
            db.session.execute(text("SELECT 1"))
            database = "ok"
        except Exception:
            log.exception("Health check: database unreachable")
            db.session.rollback()
            database = "unreachable"
        redis_status = _redis_status(app.config["REDIS_URL"])
        status = "ok" if database == "ok" else "unavailable"
        body = {"status": status, "database": database, "redis": redis_status}
        return jsonify(body), 200 if database == "ok" else 503


def _redis_status(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
        return "ok"
    except (redis.RedisError, OSError):
        return "unreachable"
    finally:
        client.close()

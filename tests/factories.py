"""Building blocks for tests: an app wired as the entry points wire it."""

from __future__ import annotations

from typing import Any

from flask import Flask

from web import create_app
from workers import celery_init_app


def wired_app(config: dict[str, Any] | None = None) -> Flask:
    """The web app with its Celery binding and outbox publisher, as wsgi.py builds it."""
    app = create_app(config)
    celery_init_app(app)
    return app

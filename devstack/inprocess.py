"""The application in this process, wired as the entry points wire it, and tenants made
through its domain: for tests, benchmarks and seeding that run domain code directly."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

# A port nothing listens on: code that reaches for Redis without one fails fast.
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"


def wired_app(config: dict[str, Any] | None = None):
    """The web app with its Celery binding and outbox publisher, as wsgi.py builds it."""
    from web import create_app
    from workers import celery_init_app

    app = create_app(config)
    celery_init_app(app)
    return app


def in_process_config(database_url: str, **overrides) -> dict:
    """An app configuration for this process: no Redis, an in-memory broker, no message
    queue, no rate limits, a signing key of its own."""
    return {
        "TESTING": True,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": UNREACHABLE_REDIS,
        "CELERY_BROKER_URL": "memory://",
        "SOCKETIO_MESSAGE_QUEUE": "",
        "SOCKETIO_ASYNC_MODE": "threading",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        # Autotask's zone look-up stays on this machine (a test that needs it sets its own).
        "PSA_AUTOTASK_ZONE_URL": "http://127.0.0.1:9/atservicesrest",
        **overrides,
    }


@dataclass
class Tenant:
    """An account with one user of each role, and their API tokens."""

    account_id: int
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def make_tenant(name: str, timezone: str = "UTC") -> Tenant:
    """An account (its owner is "admin") with a technician and two engineers, made in the
    current app context."""
    from models import tenancy
    from models.accounts import create_account, create_user

    slug = name.lower().replace(" ", "-")
    account, owner, token = create_account(
        name, f"{name} Owner", f"owner@{slug}.example", "owner-password", timezone=timezone
    )
    tenant = Tenant(account.id, {"admin": token}, {"admin": owner.id})
    with tenancy.use_tenant(account.id):  # as the owner adds them (row security holds)
        for who, role in [("tech", "technician"), ("eng", "engineer"), ("eng2", "engineer")]:
            user, user_token = create_user(
                account, f"{name} {who.title()}", f"{who}@{slug}.example", role, "user-password"
            )
            tenant.tokens[who], tenant.users[who] = user_token, user.id
    return tenant

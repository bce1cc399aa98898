"""Building blocks for tests (helpers, not fixtures): an app wired as the entry points wire
it, its test configuration, tenants with one user of each role, and sessions and handoffs
made through the API. The fixtures built from them are in tests/conftest.py."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from models import db, tenancy
from models.accounts import create_account, create_user
from tests.integration.services import POSTGRES_SKIP_REASON, temporary_postgres_database
from tests.three_roles import migrate, three_role_database
from web import create_app
from workers import celery_init_app

# A port nothing listens on: code that reaches for Redis in unit tests fails fast.
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"


def wired_app(config: dict[str, Any] | None = None) -> Flask:
    """The web app with its Celery binding and outbox publisher, as wsgi.py builds it."""
    app = create_app(config)
    celery_init_app(app)
    return app


# The role URLs of each three-role database a test made (`own_database("three_roles")`),
# by its runtime URL: an app on that URL gets the owner and system URLs too.
THREE_ROLE_CONFIG: dict[str, dict[str, str]] = {}


def app_config(database_url: str, **overrides) -> dict:
    return {
        **THREE_ROLE_CONFIG.get(database_url, {}),
        "TESTING": True,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": UNREACHABLE_REDIS,
        "CELERY_BROKER_URL": "memory://",
        "SOCKETIO_MESSAGE_QUEUE": "",
        "SOCKETIO_ASYNC_MODE": "threading",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        **overrides,
    }


@contextmanager
def running_app(config: dict[str, Any]) -> Iterator[Flask]:
    """A wired app inside its app context with the tables created; on the way out the
    session is removed and the engine's connections closed (a test's database file or
    PostgreSQL database can then go)."""
    app = wired_app(config)
    with app.app_context():
        db.create_all()
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def postgres_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


@contextmanager
def own_database(kind: str, tmp_path: Path, prefix: str = "test") -> Iterator[str]:
    """A database for one test: a SQLite file under `tmp_path` ("sqlite"), or ("postgres")
    one created on the TEST_POSTGRES_URL server and dropped afterwards; the test is skipped,
    saying why, when that is unset."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    if kind == "three_roles":
        with three_role_database(base, prefix=prefix) as roles:
            migrate(roles)
            THREE_ROLE_CONFIG[roles.runtime_url] = roles.config()
            try:
                yield roles.runtime_url
            finally:
                THREE_ROLE_CONFIG.pop(roles.runtime_url, None)
        return
    with temporary_postgres_database(base, prefix=prefix) as url:
        yield url


# On a test: run it on SQLite and again on PostgreSQL (`database_url`, hence `app`).
both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
# On a test: also on PostgreSQL with the three roles of docs/deploy.md, row security
# enforced (the migrated schema, the runtime role serving the app, the system role).
with_three_roles = pytest.mark.parametrize(
    "database_url", ["sqlite", "postgres", "three_roles"], indirect=True
)


@dataclass
class Tenant:
    """An account with one user of each role, and their API tokens."""

    account_id: int
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def make_tenant(name: str, timezone: str = "UTC") -> Tenant:
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


SNAPSHOT = {"device": "LAPTOP-42", "steps": ["rebooted", "cleared DNS cache"], "os": "Windows 11"}
ASSESSMENT = {"summary": "Likely a stale VPN profile", "confidence": 0.62}


def new_session(client, tenant: Tenant, who: str = "tech", title: str = "VPN drops every hour"):
    response = client.post(
        "/api/v1/sessions",
        json={"title": title, "snapshot": SNAPSHOT, "ai_assessment": ASSESSMENT},
        headers=tenant.auth(who),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def new_handoff(client, tenant: Tenant, reason: str = "Stuck after the VPN reset"):
    session = new_session(client, tenant)
    response = client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": reason},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def cookie_login(client, user_id: int) -> str:
    """Sign `user_id` in on `client` as the login form does (a server-side login and its
    cookie); returns the login's key."""
    from datetime import timedelta

    from models import User
    from models.credentials import start_login
    from models.security_log import Client
    from web.auth import SESSION_LOGIN_KEY, SESSION_USER_KEY

    key = start_login(db.session.get(User, user_id), Client("127.0.0.1"), timedelta(days=1))
    with client.session_transaction() as cookie_session:
        cookie_session[SESSION_USER_KEY] = user_id
        cookie_session[SESSION_LOGIN_KEY] = key
    return key

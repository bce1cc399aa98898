"""Building blocks for tests (helpers, not fixtures): an app wired as the entry points wire
it, its test configuration, tenants with one user of each role, and sessions and handoffs
made through the API. The fixtures built from them are in tests/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from devstack.inprocess import UNREACHABLE_REDIS, Tenant, in_process_config, make_tenant, wired_app
from devstack.postgres import temporary_postgres_database
from devstack.three_roles import migrate, three_role_database
from models import db
from tests.integration.services import POSTGRES_SKIP_REASON

__all__ = ["UNREACHABLE_REDIS", "Tenant", "make_tenant", "wired_app"]

# The role URLs of each three-role database a test made (`own_database("three_roles")`),
# by its runtime URL: an app on that URL gets the owner and system URLs too.
THREE_ROLE_CONFIG: dict[str, dict[str, str]] = {}


def app_config(database_url: str, **overrides) -> dict:
    return {
        **THREE_ROLE_CONFIG.get(database_url, {}),
        **in_process_config(database_url, **overrides),
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

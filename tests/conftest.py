"""App fixtures and small factories shared by the unit and API tests."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

import pytest

from models import db
from models.accounts import create_account, create_user
from tests.factories import wired_app
from tests.integration.services import POSTGRES_SKIP_REASON, temporary_postgres_database

# A port nothing listens on: code that reaches for Redis in unit tests fails fast.
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"


def app_config(database_url: str, **overrides) -> dict:
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
        **overrides,
    }


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing():
    """Real hashes at a test-sized cost: production's work factor only slows the suite."""
    import models.accounts

    original = models.accounts.generate_password_hash
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            models.accounts,
            "generate_password_hash",
            lambda password: original(password, method="pbkdf2:sha256:1000"),
        )
        yield


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("postgres") and not postgres_url():
        pytest.skip("PostgreSQL not configured: set TEST_POSTGRES_URL (make test does)")


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def app(database_url):
    app = wired_app(app_config(database_url))
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def postgres_app():
    """Like `app`, on a PostgreSQL database of its own: created on the TEST_POSTGRES_URL
    server, dropped afterwards. Skipped, with the reason, when TEST_POSTGRES_URL is unset."""
    base = postgres_url()
    if base is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    with temporary_postgres_database(base, prefix="app") as url:
        app = wired_app(app_config(url))
        with app.app_context():
            db.create_all()
            yield app
            db.session.remove()
            db.engine.dispose()


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
    for who, role in [("tech", "technician"), ("eng", "engineer"), ("eng2", "engineer")]:
        user, user_token = create_user(
            account, f"{name} {who.title()}", f"{who}@{slug}.example", role, "user-password"
        )
        tenant.tokens[who], tenant.users[who] = user_token, user.id
    return tenant


@pytest.fixture
def tenant(app) -> Tenant:
    return make_tenant("Alpha MSP")


@pytest.fixture
def other_tenant(app) -> Tenant:
    return make_tenant("Beta MSP")


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


def postgres_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


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

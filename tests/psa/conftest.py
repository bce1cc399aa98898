"""Fixtures for the PSA tests: the fake ConnectWise server and an app configured
with fresh encryption keys, a short PSA timeout and fast retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from models import db
from models.db import utcnow
from models.entities import Delivery
from tests.conftest import app_config
from tests.factories import wired_app
from tests.psa_fake.server import FakeConnectWise

PSA_TIMEOUT = 0.5


def psa_config(database_url: str, **overrides) -> dict:
    return app_config(
        database_url,
        PSA_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        PSA_TIMEOUT_SECONDS=PSA_TIMEOUT,
        PSA_FIRST_RETRY_SECONDS=1,
        PSA_MAX_BACKOFF_SECONDS=5,
        BASE_URL="http://127.0.0.1:5999",
        **overrides,
    )


@pytest.fixture
def fake_cw() -> Iterator[FakeConnectWise]:
    fake = FakeConnectWise().start()
    fake.add_ticket("5001")
    yield fake
    fake.stop()


@pytest.fixture
def app(database_url):
    """Overrides tests/conftest.py's `app` for the PSA tests."""
    app = wired_app(psa_config(database_url))
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


def make_due(delivery_id: int) -> None:
    """Skip the backoff wait: the next attempt may run now."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(locked_until=None, next_attempt_at=utcnow())
    )
    db.session.commit()

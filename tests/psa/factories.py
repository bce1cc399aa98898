"""Helpers for the PSA tests: an app configuration with fresh encryption keys, a short PSA
timeout and fast retries, and a way to skip a delivery's backoff wait."""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import update

from models import db
from models.db import utcnow
from models.entities import Delivery
from tests.factories import app_config

PSA_TIMEOUT = 0.5
AUTOTASK_TICKET = "7301"


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


def make_due(delivery_id: int) -> None:
    """Skip the backoff wait: the next attempt may run now."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(locked_until=None, next_attempt_at=utcnow())
    )
    db.session.commit()

"""Fixtures for the PSA tests: the ConnectWise and Autotask stand-ins and an app configured as
tests/psa/factories.py's `psa_config` says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from adapters.psa.connectwise import SIGNING_KEYS
from tests.factories import running_app
from tests.psa.factories import AUTOTASK_TICKET, psa_config
from tests.psa_fake.autotask import FakeAutotask
from tests.psa_fake.server import FakeConnectWise


@pytest.fixture
def fake_cw() -> Iterator[FakeConnectWise]:
    fake = FakeConnectWise().start()
    fake.add_ticket("5001")
    yield fake
    fake.stop()


@pytest.fixture
def fake_at(app) -> Iterator[FakeAutotask]:
    """The Autotask stand-in, with the app's zone look-up pointed at it."""
    fake = FakeAutotask().start()
    fake.add_ticket(AUTOTASK_TICKET)
    app.config["PSA_AUTOTASK_ZONE_URL"] = fake.lookup_url
    yield fake
    fake.stop()


@pytest.fixture
def app(database_url) -> Iterator[Flask]:
    """Overrides tests/conftest.py's `app` for the PSA tests."""
    with running_app(psa_config(database_url)) as app:
        yield app


@pytest.fixture(autouse=True)
def _no_signing_keys_from_another_test() -> Iterator[None]:
    """The signing-key cache lives as long as the process; connection ids repeat across
    the tests' fresh databases."""
    SIGNING_KEYS.clear()
    yield
    SIGNING_KEYS.clear()


@pytest.fixture
def queued(app) -> list:
    """The tasks the app asks Celery for (their arguments), instead of sending them."""
    tasks: list = []
    app.extensions["celery"].send_task = lambda name, args=None, **kw: tasks.append(args)
    return tasks

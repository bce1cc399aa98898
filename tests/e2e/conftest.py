"""The real stack for browser tests, one per test module: redis-server, an SMTP sink, a
migrated SQLite file, `python wsgi.py` and a Celery worker, plus headless Chromium (Debian's,
driven by Playwright; never a downloaded browser). Built from devstack/.

Screenshots go to test-artifacts/ at the repository root (gitignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from devstack.app import (
    WORKER_READY,
    app_env,
    create_account,
    flask_cli,
    sqlite_url,
    web_command,
    worker_command,
)
from devstack.browser import CHROMIUM_ARGS, chromium_executable
from devstack.net import REPO_ROOT, free_port
from devstack.postgres import postgres_url_from_env
from devstack.processes import ManagedProcess, ProcessGroup, http_ready, log_contains
from devstack.redis_server import RedisServer
from devstack.smtp_sink import SmtpSink
from tests.integration.conftest import no_postgres_for_three_roles, stack_database

ARTIFACTS = REPO_ROOT / "test-artifacts"
PASSWORD = "e2e-password-1"


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    web: ManagedProcess
    worker: ManagedProcess
    redis: RedisServer
    smtp: SmtpSink

    def api(self, token: str, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs
        )

    def rollup(self) -> None:
        """What beat does every 30 s, now."""
        flask_cli(self.env, "rollup")


@dataclass
class Person:
    id: int
    name: str
    email: str
    role: str
    token: str
    password: str = PASSWORD


@dataclass
class Tenant:
    name: str
    people: dict[str, Person] = field(default_factory=dict)

    def __getitem__(self, who: str) -> Person:
        return self.people[who]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("e2e-stack")
    with ExitStack() as databases:
        database = {"DATABASE_URL": sqlite_url(base / "escalation.db")}
        if stack_database() == "three_roles":
            database = databases.enter_context(_three_roles()).env()
        yield from _stack(base, database, request)


@contextmanager
def _three_roles():
    from devstack.three_roles import three_role_database

    base = postgres_url_from_env()
    if not base:
        no_postgres_for_three_roles()
    with three_role_database(base, prefix="e2e") as roles:
        yield roles


def _stack(base: Path, database: dict[str, str], request) -> Iterator[Stack]:
    redis = RedisServer(data_dir=base / "redis").start()
    smtp = SmtpSink().start()
    port = free_port()
    env = app_env(
        database,
        redis.url,
        port=port,
        # PSA connections are sealed with this key (a fresh one per stack).
        PSA_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        PSA_TIMEOUT_SECONDS="3",
        **smtp.env(),
    )
    env.update(getattr(request.module, "STACK_ENV", {}))  # a test module's own settings
    flask_cli(env, "db", "upgrade")
    group = ProcessGroup(base / "logs")
    failed_before = request.session.testsfailed
    try:
        url = f"http://127.0.0.1:{port}"
        web = group.start(web_command(), env, ready_check=http_ready(f"{url}/healthz"), name="web")
        if "SYSTEM_DATABASE_URL" in database:  # the three roles: the database enforces it
            ready = requests.get(f"{url}/readyz", timeout=5).json()
            assert ready["tenant_isolation"] == "enforced", ready
        worker = group.start(
            worker_command(name="e2e-worker"),
            env,
            ready_check=log_contains(WORKER_READY),
            name="worker",
        )
        yield Stack(url, env, web, worker, redis, smtp)
    finally:
        if request.session.testsfailed > failed_before:
            print("\n" + group.describe_logs(lines=80))
        group.stop_all()
        smtp.stop()
        redis.close()


def _tenant(stack: Stack, name: str, people: list[tuple[str, str, str]]) -> Tenant:
    slug = re.sub(r"[^a-z]+", "-", name.lower()).strip("-")
    owner_email = f"owner@{slug}.test"
    created = create_account(
        stack.env, name=name, owner_name=f"{name} Owner", owner_email=owner_email,
        owner_password=PASSWORD,
    )  # fmt: skip
    tenant = Tenant(name)
    tenant.people["admin"] = Person(
        created["user_id"], f"{name} Owner", owner_email, "admin", created["token"]
    )
    for who, person_name, role in people:
        email = f"{who}@{slug}.test"
        response = stack.api(
            created["token"],
            "POST",
            "/users",
            json={"name": person_name, "email": email, "role": role, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        tenant.people[who] = Person(body["user"]["id"], person_name, email, role, body["token"])
    return tenant


@pytest.fixture(scope="module")
def acme(stack: Stack) -> Tenant:
    return _tenant(
        stack,
        "Acme MSP",
        [
            ("tech", "Terry Technician", "technician"),
            ("eng", "Erin Engineer", "engineer"),
            ("eng2", "Sam Senior", "engineer"),
        ],
    )


@pytest.fixture(scope="module")
def globex(stack: Stack) -> Tenant:
    return _tenant(stack, "Globex MSP", [("eng", "Gina Globex", "engineer")])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_executable()
    if executable is None:
        pytest.skip("No chromium on PATH (Debian's `chromium` package; set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_browsers(browser) -> Iterator[list[Any]]:
    """Browser contexts (separate cookie jars, like separate people) closed after the test."""
    contexts: list[Any] = []
    yield contexts
    for context in contexts:
        context.close()


@pytest.fixture
def sign_in(stack: Stack, browser, open_browsers):
    """sign_in(person, path) -> a page in a fresh browser context, signed in through the
    login form and showing `path`."""
    from playwright.sync_api import expect

    def open_as(person: Person, path: str):
        context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
        open_browsers.append(context)
        page = context.new_page()
        page.goto(f"/login?next={path}")
        page.get_by_label("Email").fill(person.email)
        page.get_by_label("Password").fill(person.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{stack.url}{path}")
        if page.locator("#live-status").count():
            expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        return page

    return open_as


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

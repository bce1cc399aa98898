"""One browser flow in the production shape: headless Chromium through deploy/nginx.conf in
front of two web nodes (eventlet with psycogreen) and a worker, on PostgreSQL (the plain
`postgresql://` URL) when TEST_POSTGRES_URL is set. Sign in through the proxy, see an
escalation arrive live, claim it, and the technician's page learns who took it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from devstack.app import WORKER_READY, app_env, flask_cli, sqlite_url, web_command, worker_command
from devstack.net import free_port
from devstack.nginx import NginxProxy, find_nginx
from devstack.postgres import postgres_url_from_env, temporary_postgres_database
from devstack.processes import ProcessGroup, http_ready, log_contains
from devstack.redis_server import RedisServer
from devstack.smtp_sink import SmtpSink
from tests.e2e.conftest import Stack, Tenant
from tests.e2e.test_pages_flow import LIVE_WITHIN_SECONDS, card, start_session, unique_title

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed"),
]


def _database(tmp) -> Iterator[str]:
    base = postgres_url_from_env()
    if base is None:
        yield sqlite_url(tmp / "escalation.db")
        return
    with temporary_postgres_database(base, prefix="e2e") as url:
        yield re.sub(r"^postgresql\+psycopg2://", "postgresql://", url)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[Stack]:
    """This module's stack: the proxy's URL is the one the browser and the API use."""
    base = tmp_path_factory.mktemp("e2e-production")
    redis = RedisServer(data_dir=base / "redis").start()
    smtp = SmtpSink().start()
    databases = _database(base)
    group = ProcessGroup(base / "logs")
    failed_before = request.session.testsfailed
    try:
        env = app_env(
            next(databases), redis.url, PROXY_FIX_X_FOR="1", PROXY_FIX_X_PROTO="1", **smtp.env()
        )
        flask_cli(env, "db", "upgrade")
        ports = [free_port(), free_port()]
        webs = [
            group.start(
                web_command(),
                {**env, "PORT": str(port)},
                ready_check=http_ready(f"http://127.0.0.1:{port}/healthz"),
                name="web",
            )
            for port in ports
        ]
        worker = group.start(
            worker_command(name="e2e-production"), env, ready_check=log_contains(WORKER_READY)
        )
        proxy = NginxProxy(ports, base / "nginx", debug=False)
        proxy.start(group)
        env["BASE_URL"] = proxy.url
        yield Stack(proxy.url, env, webs[0], worker, redis, smtp)
    finally:
        if request.session.testsfailed > failed_before:
            print("\n" + group.describe_logs(lines=60))
        group.stop_all()
        smtp.stop()
        redis.close()
        next(databases, None)


def test_through_nginx_a_senior_sees_it_live_claims_it_and_the_technician_knows(
    stack: Stack, acme: Tenant, sign_in
) -> None:
    technician, senior = acme["tech"], acme["eng"]
    queue = sign_in(senior, "/escalations")
    title = unique_title("Printer spooler crash loop")
    session = start_session(stack, technician, title)
    pilot_tech = sign_in(technician, f"/pilot/{session['id']}")
    pilot_tech.get_by_label("Reason").fill("Spooler restarts every minute")
    clicked = time.monotonic()
    pilot_tech.get_by_role("button", name="Escalate").click()

    arrived = card(queue, title)
    expect(arrived).to_be_visible(timeout=LIVE_WITHIN_SECONDS * 1000)
    print(f"shown on the queue through nginx {time.monotonic() - clicked:.2f} s after Escalate")
    arrived.get_by_role("button", name="Claim").click()
    queue.wait_for_url(f"{stack.url}/pilot/{session['id']}")
    expect(queue.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(pilot_tech.locator("#handoff-status")).to_have_text("Claimed by Erin Engineer.")

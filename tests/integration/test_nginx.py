"""deploy/nginx.conf in front of two real web nodes (eventlet), a worker and beat, on
PostgreSQL (the plain `postgresql://` URL operators are handed) when TEST_POSTGRES_URL is
set, else SQLite.

Clients come from different loopback addresses (127.0.N.1: ip_hash pins by the first three
octets) so that the load balancer spreads them over both nodes the way it spreads an MSP's
offices. The rendered test config adds one header, X-Upstream, naming the node that
answered; nothing else differs from the shipped file.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import socketio

from devstack.nginx import session_from
from tests.integration.services import (
    BEAT_READY,
    ManagedProcess,
    NginxProxy,
    ProcessGroup,
    RedisServer,
    SmtpSink,
    app_env,
    beat_command,
    find_nginx,
    flask_cli,
    free_port,
    http_ready,
    log_contains,
    postgres_url_from_env,
    sqlite_url,
    temporary_postgres_database,
    wait_for,
    web_command,
    worker_command,
)
from tests.integration.test_realtime import Tenant, make_tenant, new_handoff

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(240),
    pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed"),
]

LOGIN_LIMIT = 3  # failed sign-ins per minute per client address, for this stack


# --------------------------------------------------------------------------- clients


class PollingSenior:
    """A Socket.IO client on the long-polling transport (the one sticky sessions are for),
    from one client address, recording `handoff.created` ids and its connects."""

    def __init__(self, url: str, token: str, address: str) -> None:
        self.created: list[int] = []
        self.connects = 0
        self.changed = threading.Condition()
        self.client = socketio.Client(
            http_session=session_from(address),
            reconnection=True,
            reconnection_delay=0.3,
            reconnection_delay_max=1,
        )
        self.client.on("connect", self._connected)
        self.client.on("handoff.created", self._created)
        self.client.connect(url, auth={"token": token}, transports=["polling"], wait_timeout=10)

    def _connected(self) -> None:
        with self.changed:
            self.connects += 1
            self.changed.notify_all()

    def _created(self, data: dict) -> None:
        with self.changed:
            self.created.append(int(data["id"]))
            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float = 20.0) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), (self.created, self.connects)

    def close(self) -> None:
        self.client.disconnect()


def node_for(proxy_url: str, address: str) -> str:
    response = session_from(address).get(f"{proxy_url}/healthz", timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["X-Upstream"]


def addresses_per_node(proxy_url: str, nodes: int = 2) -> dict[str, str]:
    """One client address pinned to each node (node address -> client address)."""
    found: dict[str, str] = {}
    for octet in range(64):
        address = f"127.0.{octet}.1"
        found.setdefault(node_for(proxy_url, address), address)
        if len(found) == nodes:
            return found
    raise AssertionError(f"ip_hash put every client address on {list(found)}")


# --------------------------------------------------------------------------- the stack


@dataclass
class BalancedStack:
    env: dict[str, str]
    group: ProcessGroup
    nodes: dict[str, ManagedProcess]  # "127.0.0.1:PORT" -> web node
    proxy: NginxProxy
    tenant: Tenant
    database: str


def _start_web(group: ProcessGroup, env: dict[str, str], port: int, name: str) -> ManagedProcess:
    proc = group.start(
        web_command(),
        {**env, "PORT": str(port)},
        ready_check=http_ready(f"http://127.0.0.1:{port}/healthz"),
        name=name,
    )
    proc.url = f"http://127.0.0.1:{port}"
    return proc


def _database(tmp: Path) -> Iterator[tuple[str, str]]:
    base = postgres_url_from_env()
    if base is None:
        yield "sqlite", sqlite_url(tmp / "escalation.db")
        return
    with temporary_postgres_database(base, prefix="nginx") as url:
        # The plain form, as hosts hand it out: the app picks its driver itself.
        yield "postgres", re.sub(r"^postgresql\+psycopg2://", "postgresql://", url)


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BalancedStack]:
    tmp = tmp_path_factory.mktemp("nginx")
    redis = RedisServer(data_dir=tmp / "redis").start()
    smtp = SmtpSink().start()
    group = ProcessGroup(tmp / "logs")
    databases = _database(tmp)
    kind, database_url = next(databases)
    try:
        env = app_env(
            database_url,
            redis.url,
            PROXY_FIX_X_FOR="1",
            PROXY_FIX_X_PROTO="1",
            LOGIN_RATE_LIMIT_PER_ADDRESS=f"{LOGIN_LIMIT} per minute",
            LOGIN_RATE_LIMIT_PER_EMAIL="100 per minute",
            **smtp.env(),
        )
        flask_cli(env, "db", "upgrade")
        ports = [free_port(), free_port()]
        nodes = {
            f"127.0.0.1:{port}": _start_web(group, env, port, f"web-{index}")
            for index, port in enumerate(ports)
        }
        worker = f"nginx-{os.getpid()}"
        group.start(
            worker_command(name=worker), env, ready_check=log_contains(rf"{worker}@\S+ ready\.")
        )
        group.start(beat_command(tmp / "beat-schedule"), env, ready_check=log_contains(BEAT_READY))
        proxy = NginxProxy(ports, tmp / "nginx")
        proxy.start(group)
        tenant = make_tenant(env, proxy.url, "balanced")
        yield BalancedStack(env, group, nodes, proxy, tenant, kind)
    finally:
        group.stop_all()
        smtp.stop()
        redis.stop()
        next(databases, None)


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "balanced" in request.fixturenames:
        print("\n" + request.getfixturevalue("balanced").group.describe_logs(lines=50))


@pytest.fixture
def seniors() -> Iterator[list[PollingSenior]]:
    opened: list[PollingSenior] = []
    yield opened
    for senior in opened:
        try:
            senior.close()
        except Exception:  # noqa: BLE001 - already gone with its node
            pass


# --------------------------------------------------------------------------- tests


def test_events_cross_nodes_and_polling_sticks_to_one_node(balanced, seniors) -> None:
    pinned = addresses_per_node(balanced.proxy.url)
    (node_a, address_a), (node_b, address_b) = sorted(pinned.items())
    tenant = balanced.tenant
    on_a = PollingSenior(balanced.proxy.url, tenant.tokens["eng"], address_a)
    on_b = PollingSenior(balanced.proxy.url, tenant.tokens["eng2"], address_b)
    seniors.extend([on_a, on_b])
    handoffs = [new_handoff(balanced.proxy.url, tenant, f"Balanced {n}")["id"] for n in range(3)]
    for senior in (on_a, on_b):
        senior.wait_for(lambda s=senior: set(handoffs) <= set(s.created))
    # Once each, and no session lost to a request landing on the wrong node.
    assert sorted(on_a.created) == sorted(on_b.created) == sorted(handoffs)
    assert on_a.connects == on_b.connects == 1
    for node, log_name in ((node_a, "eng"), (node_b, "eng2")):
        assert "socket.io" in balanced.nodes[node].log_text(), (node, log_name)


def test_websocket_upgrade_through_nginx(balanced) -> None:
    client = socketio.Client(reconnection=False)
    received = threading.Event()
    client.on("handoff.created", lambda data: received.set())
    client.connect(
        balanced.proxy.url,
        auth={"token": balanced.tenant.tokens["admin"]},
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        assert client.transport() == "websocket"
        new_handoff(balanced.proxy.url, balanced.tenant, "Over a websocket")
        assert received.wait(20)
    finally:
        client.disconnect()


def test_a_client_reconnects_through_nginx_after_its_node_restarts(balanced, seniors) -> None:
    pinned = addresses_per_node(balanced.proxy.url)
    node, address = sorted(pinned.items())[0]
    senior = PollingSenior(balanced.proxy.url, balanced.tenant.tokens["eng"], address)
    seniors.append(senior)
    web = balanced.nodes[node]
    web.restart()
    senior.wait_for(lambda: senior.connects >= 2, timeout=30)
    handoff = new_handoff(balanced.proxy.url, balanced.tenant, "After the restart")["id"]
    senior.wait_for(lambda: handoff in senior.created)
    assert senior.created.count(handoff) == 1


def _failed_sign_in(session: requests.Session, url: str, n: int) -> int:
    page = session.get(f"{url}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    response = session.post(
        f"{url}/login",
        data={"csrf_token": token.group(1), "email": f"nobody{n}@x.test", "password": "wrong"},
        timeout=10,
        allow_redirects=False,
    )
    return response.status_code


def test_the_sign_in_limit_counts_each_client_address_behind_nginx(balanced) -> None:
    url = balanced.proxy.url
    noisy, quiet = session_from("127.0.200.1"), session_from("127.0.201.1")
    statuses = [_failed_sign_in(noisy, url, n) for n in range(LOGIN_LIMIT + 1)]
    assert statuses == [200] * LOGIN_LIMIT + [429]
    # Another office behind the same balancer is not punished for it.
    assert _failed_sign_in(quiet, url, 99) == 200


def test_the_database_the_stack_runs_on(balanced) -> None:
    """Says which database this module exercised (PostgreSQL whenever it is configured)."""
    expected = "postgres" if postgres_url_from_env() else "sqlite"
    wait_for(lambda: requests.get(f"{balanced.proxy.url}/readyz", timeout=5).ok, timeout=10)
    # Asked of the running nodes, not of the fixture that configured them.
    ready = requests.get(f"{balanced.proxy.url}/readyz", timeout=5).json()
    assert ready["database"] == "ok"
    sqlite_says = "sqlite: no row-level security"
    if expected == "sqlite":
        assert ready.get("tenant_isolation_reason") == sqlite_says, ready
    else:
        assert ready.get("tenant_isolation_reason") != sqlite_says, ready

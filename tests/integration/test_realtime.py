"""Real-time notifications against the real stack: redis-server, two `python wsgi.py` web
nodes (eventlet), a Celery worker and beat, the SMTP sink, python-socketio clients over
websocket.

One stack serves the whole module (started once, ~15 s); each test uses its own sessions
and titles so tests do not see each other's events or mail. The test that stops Redis
runs last. The message-queue failure test has its own small stack with a second Redis.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio

from adapters.presence import Presence
from tests.integration import broker
from tests.integration.services import (
    BEAT_READY,
    ManagedProcess,
    ProcessGroup,
    RedisServer,
    SmtpSink,
    app_env,
    beat_command,
    create_account,
    flask_cli,
    free_port,
    http_ready,
    log_contains,
    sqlite_url,
    wait_for,
    web_command,
    worker_command,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PRESENCE_TTL_SECONDS = 3
FAST_PRESENCE = {
    "PRESENCE_TTL_SECONDS": str(PRESENCE_TTL_SECONDS),
    "PRESENCE_HEARTBEAT_SECONDS": "1",
}


# --------------------------------------------------------------------------- clients


class Listener:
    """A python-socketio client over websocket that records every event it receives."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        auth: Any = None,
    ) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = threading.Condition()
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record)
        self.client.connect(
            url,
            auth={"token": token} if token is not None else auth,
            headers=headers or {},
            transports=["websocket"],
            wait_timeout=10,
        )

    def _record(self, event: str, data: Any = None) -> None:
        with self._changed:
            self.events.append((event, data))
            self._changed.notify_all()

    def _matching(self, event: str, handoff_id: int) -> list[dict]:
        return [
            d
            for e, d in self.events
            if e == event and isinstance(d, dict) and d["id"] == handoff_id
        ]

    def wait(self, event: str, handoff_id: int, timeout: float = 15.0) -> dict:
        """The first `event` for this handoff, waiting for it up to `timeout` seconds."""
        with self._changed:
            found = self._changed.wait_for(lambda: self._matching(event, handoff_id), timeout)
            assert found, f"{event} for handoff {handoff_id} not received; got {self.events}"
            return found[0]

    def handoff_events(self, handoff_id: int) -> list[str]:
        with self._changed:
            return [e for e, d in self.events if isinstance(d, dict) and d.get("id") == handoff_id]

    def close(self) -> None:
        self.client.disconnect()


def refused(url: str, **kwargs: Any) -> bool:
    try:
        Listener(url, **kwargs).close()
    except socketio.exceptions.ConnectionError:
        return True
    return False


# --------------------------------------------------------------------------- the stack


@dataclass
class Tenant:
    account_id: int
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)  # who -> {id, name, email}

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


PASSWORD = "integration-password"


def make_tenant(env: dict[str, str], url: str, slug: str) -> Tenant:
    owner_email = f"owner@{slug}.test"
    created = create_account(
        env, name=f"{slug} MSP", owner_email=owner_email, owner_password=PASSWORD
    )
    tenant = Tenant(created["account_id"], {"admin": created["token"]})
    tenant.users["admin"] = {"id": created["user_id"], "email": owner_email}
    for who, role in [("tech", "technician"), ("eng", "engineer"), ("eng2", "engineer")]:
        email = f"{who}@{slug}.test"
        response = requests.post(
            f"{url}/api/v1/users",
            json={"name": f"{slug} {who}", "email": email, "role": role, "password": PASSWORD},
            headers=tenant.auth("admin"),
            timeout=10,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        tenant.tokens[who] = body["token"]
        tenant.users[who] = {"id": body["user"]["id"], "email": email}
    return tenant


@dataclass
class Stack:
    redis: RedisServer
    smtp: SmtpSink
    env: dict[str, str]
    group: ProcessGroup
    web_a: ManagedProcess
    web_b: ManagedProcess
    alpha: Tenant
    beta: Tenant

    def presence(self) -> Presence:
        return Presence(self.redis.client(), ttl_seconds=PRESENCE_TTL_SECONDS)

    def start_web(self, name: str) -> ManagedProcess:
        return start_web(self.group, self.env, name)


def start_web(group: ProcessGroup, env: dict[str, str], name: str) -> ManagedProcess:
    """`python wsgi.py` on a free port, ready once /healthz answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = group.start(
        web_command(),
        {**env, "PORT": str(port)},
        ready_check=http_ready(f"{url}/healthz"),
        name=name,
        timeout=60,
    )
    proc.url = url
    return proc


@contextlib.contextmanager
def two_node_stack(tmp: Path, **settings: str) -> Iterator[Stack]:
    """Redis, an SMTP sink, two web nodes, a worker and beat on one SQLite database, with
    two tenants; ``settings`` go to every process."""
    redis = RedisServer(data_dir=tmp / "redis").start()
    smtp = SmtpSink()
    smtp.start()
    group = ProcessGroup(tmp / "logs")
    try:
        env = app_env(sqlite_url(tmp / "escalation.db"), redis.url, **settings, **smtp.env())
        flask_cli(env, "db", "upgrade")
        web_a = start_web(group, env, "web-a")
        web_b = start_web(group, env, "web-b")
        worker_name = f"realtime-{os.getpid()}"
        group.start(
            worker_command(name=worker_name),
            env,
            ready_check=log_contains(rf"{worker_name}@\S+ ready\."),
            name="worker",
        )
        group.start(
            beat_command(tmp / "celerybeat-schedule"),
            env,
            ready_check=log_contains(BEAT_READY),
            name="beat",
        )
        alpha = make_tenant(env, web_a.url, "alpha")
        beta = make_tenant(env, web_a.url, "beta")
        yield Stack(redis, smtp, env, group, web_a, web_b, alpha, beta)
    finally:
        group.stop_all()
        smtp.stop()
        redis.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with two_node_stack(
        tmp_path_factory.mktemp("realtime"), BASE_URL="http://127.0.0.1:5000", **FAST_PRESENCE
    ) as started:
        yield started


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "stack" in request.fixturenames:
        print("\n" + request.getfixturevalue("stack").group.describe_logs(lines=60))


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    opened: list[Listener] = []
    yield opened
    for listener in opened:
        try:
            listener.close()
        except Exception:  # noqa: BLE001 - already gone with its web node
            pass


def new_session(url: str, tenant: Tenant, title: str) -> int:
    response = requests.post(
        f"{url}/api/v1/sessions",
        json={"title": title, "snapshot": {"device": "PRN-04"}, "ai_assessment": {"gist": "x"}},
        headers=tenant.auth("tech"),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def escalate(url: str, tenant: Tenant, session_id: int) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/sessions/{session_id}/escalate",
        json={"reason": "Spooler crashes after the driver update"},
        headers=tenant.auth("tech"),
        timeout=10,
    )


def new_handoff(url: str, tenant: Tenant, title: str) -> dict:
    response = escalate(url, tenant, new_session(url, tenant, title))
    assert response.status_code == 201, response.text
    return response.json()


def get_json(url: str, tenant: Tenant, path: str, who: str = "eng") -> dict:
    response = requests.get(f"{url}/api/v1{path}", headers=tenant.auth(who), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def mail_about(smtp: SmtpSink, title: str) -> list:
    return [m for m in smtp.messages if title in m.subject]


def recipients(messages: list) -> list[str]:
    return sorted(rcpt for m in messages for rcpt in m.rcpt_tos)


def socket_rows_sent(url: str, tenant: Tenant, handoff_id: int) -> None:
    """Wait until each live event of the handoff has been dispatched (its socket delivery
    `sent`): no emit of it, first or retried, is still to come."""
    path = f"/escalations/{handoff_id}/deliveries"

    def sent() -> bool:
        items = get_json(url, tenant, path, "admin")["items"]
        rows = [item for item in items if item["channel"] == "socket"]
        return bool(rows) and all(row["status"] == "sent" for row in rows)

    wait_for(sent, timeout=30, message=f"the live events of handoff {handoff_id} dispatched")


def barrier(
    url: str,
    tenant: Tenant,
    seniors: tuple[Listener, ...] = (),
    technicians: tuple[Listener, ...] = (),
) -> int:
    """An event of the tenant's own, after everything before it: a new handoff (to its
    seniors) and its claim (to its technician). Each web node relays the message queue in
    order, so a client that receives it has received every earlier event meant for it; a
    duplicate or a stray event would be there by now. Returns the barrier's handoff id."""
    handoff = new_handoff(url, tenant, f"Barrier {secrets.token_hex(4)}")
    for listener in seniors:
        listener.wait("handoff.created", handoff["id"])
    if technicians:
        claim = requests.post(
            f"{url}/api/v1/escalations/{handoff['id']}/claim",
            headers=tenant.auth("eng"),
            timeout=10,
        )
        assert claim.status_code == 200, claim.text
        for listener in technicians:
            listener.wait("handoff.claimed", handoff["id"])
    return handoff["id"]


def emails_settled(stack: Stack, tenant: Tenant, handoff_id: int) -> None:
    """No task that could send one of the handoff's emails (again) is left at the broker."""
    broker.wait_handoff_emails_settled(
        stack.redis.url, stack.web_a.url, tenant.tokens["admin"], [handoff_id]
    )


# --------------------------------------------------------------------------- tests


def test_created_reaches_online_seniors_emails_offline_ones_and_nobody_else(stack, listeners):
    alpha, beta, url = stack.alpha, stack.beta, stack.web_a.url
    title = "Printer queue jammed on floor 3"
    senior = Listener(url, alpha.tokens["eng"])
    technician = Listener(url, alpha.tokens["tech"])
    outsider = Listener(url, beta.tokens["eng"])
    outsider_admin = Listener(url, beta.tokens["admin"])
    listeners.extend([senior, technician, outsider, outsider_admin])

    handoff = new_handoff(url, alpha, title)

    received = senior.wait("handoff.created", handoff["id"])
    # The event carries the handoff summary, as the queue lists it.
    listed = get_json(url, alpha, "/escalations")["items"]
    assert received == next(item for item in listed if item["id"] == handoff["id"])
    # The offline engineer and the offline admin: exactly one email each.
    offline = sorted([alpha.users["admin"]["email"], alpha.users["eng2"]["email"]])
    wait_for(lambda: len(mail_about(stack.smtp, title)) >= 2, timeout=20)
    emails_settled(stack, alpha, handoff["id"])
    socket_rows_sent(url, alpha, handoff["id"])
    barrier(url, alpha, seniors=(senior,), technicians=(technician,))
    barrier(url, beta, seniors=(outsider, outsider_admin))
    assert recipients(mail_about(stack.smtp, title)) == offline
    assert technician.handoff_events(handoff["id"]) == []
    assert outsider.handoff_events(handoff["id"]) == []
    assert outsider_admin.handoff_events(handoff["id"]) == []
    assert senior.handoff_events(handoff["id"]) == ["handoff.created"]  # once
    items = get_json(url, alpha, f"/escalations/{handoff['id']}/deliveries")["items"]
    assert [(i["channel"], i["status"]) for i in items if i["channel"] == "socket"] == [
        ("socket", "sent")
    ]


def test_claimed_and_resolved_reach_the_escalating_technician_and_the_seniors(stack, listeners):
    alpha, beta, url = stack.alpha, stack.beta, stack.web_a.url
    senior = Listener(url, alpha.tokens["eng2"])
    technician = Listener(url, alpha.tokens["tech"])
    outsider = Listener(url, beta.tokens["tech"])
    listeners.extend([senior, technician, outsider])
    handoff = new_handoff(url, alpha, "VPN drops every hour")
    senior.wait("handoff.created", handoff["id"])

    claim = requests.post(
        f"{url}/api/v1/escalations/{handoff['id']}/claim", headers=alpha.auth("eng"), timeout=10
    )
    assert claim.status_code == 200, claim.text
    claimed = technician.wait("handoff.claimed", handoff["id"])
    assert claimed["status"] == "claimed"
    assert claimed["claimed_by"]["id"] == alpha.users["eng"]["id"]
    senior.wait("handoff.claimed", handoff["id"])

    resolve = requests.post(
        f"{url}/api/v1/escalations/{handoff['id']}/resolve", headers=alpha.auth("eng"), timeout=10
    )
    assert resolve.status_code == 200, resolve.text
    assert technician.wait("handoff.resolved", handoff["id"])["status"] == "resolved"
    senior.wait("handoff.resolved", handoff["id"])
    socket_rows_sent(url, alpha, handoff["id"])
    barrier(url, alpha, seniors=(senior,), technicians=(technician,))
    barrier(url, beta, technicians=(outsider,))
    assert technician.handoff_events(handoff["id"]) == ["handoff.claimed", "handoff.resolved"]
    assert outsider.handoff_events(handoff["id"]) == []


def test_anonymous_and_forged_connections_are_refused(stack):
    url = stack.web_a.url
    assert refused(url)
    assert refused(url, auth={"token": "forged-token-0123456789"})
    assert refused(url, auth={"token": ""})
    assert refused(url, headers={"Cookie": "session=forged.cookie.value"})
    assert not refused(url, token=stack.alpha.tokens["eng"])


def test_the_login_cookie_authenticates_a_browser_socket(stack, listeners):
    url, alpha = stack.web_a.url, stack.alpha
    browser = requests.Session()
    page = browser.get(f"{url}/login", timeout=10)
    if page.status_code == 404:
        pytest.skip("the /login page is not part of this build")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    form = {"email": alpha.users["eng2"]["email"], "password": PASSWORD}
    if csrf:
        form["csrf_token"] = csrf.group(1)
    signed_in = browser.post(f"{url}/login", data=form, allow_redirects=False, timeout=10)
    assert signed_in.status_code in (302, 303), signed_in.text[:500]
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)

    tab = Listener(url, headers={"Cookie": cookie})
    listeners.append(tab)
    handoff = new_handoff(url, alpha, "Cookie-authenticated queue page")
    tab.wait("handoff.created", handoff["id"])
    assert stack.presence().is_online(alpha.users["eng2"]["id"])


def test_an_event_created_through_one_web_node_reaches_a_client_of_the_other(stack, listeners):
    alpha = stack.alpha
    on_b = Listener(stack.web_b.url, alpha.tokens["eng"])
    listeners.append(on_b)
    handoff = new_handoff(stack.web_a.url, alpha, "Cross-node escalation")
    assert on_b.wait("handoff.created", handoff["id"])["id"] == handoff["id"]


def test_a_second_tab_keeps_a_senior_online_and_closing_both_takes_them_offline(stack):
    alpha, presence = stack.alpha, stack.presence()
    eng = alpha.users["eng"]["id"]
    # Tabs of earlier tests are closed; their disconnects may still be on their way.
    wait_for(lambda: not presence.is_online(eng), timeout=5, message="earlier tabs gone")
    first_tab = Listener(stack.web_a.url, alpha.tokens["eng"])
    second_tab = Listener(stack.web_b.url, alpha.tokens["eng"])  # another node, too
    assert presence.is_online(eng)

    first_tab.close()
    time.sleep(PRESENCE_TTL_SECONDS + 1)  # past the TTL: the heartbeat keeps the tab alive
    assert presence.is_online(eng), "the second tab is open, yet the senior shows offline"

    second_tab.close()
    wait_for(lambda: not presence.is_online(eng), timeout=2, message="eng offline")


def test_a_killed_web_node_leaves_no_ghost_after_the_ttl(stack):
    alpha, presence = stack.alpha, stack.presence()
    eng2 = alpha.users["eng2"]["id"]
    node = stack.start_web("web-doomed")
    tab = Listener(node.url, alpha.tokens["eng2"])
    assert presence.is_online(eng2)

    node.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: not presence.is_online(eng2), timeout=PRESENCE_TTL_SECONDS + 3)
    assert time.monotonic() - killed_at <= PRESENCE_TTL_SECONDS + 2
    try:
        tab.close()
    except Exception:  # noqa: BLE001 - its server is gone
        pass


@pytest.mark.timeout(240)
def test_escalation_with_redis_stopped_answers_at_once_and_notifies_when_redis_is_back(
    stack, listeners
):
    """Runs near the end of the module: it stops the module's Redis."""
    alpha, url = stack.alpha, stack.web_a.url
    title = "Escalated while Redis was down"
    senior = Listener(url, alpha.tokens["eng"])
    listeners.append(senior)
    session_id = new_session(url, alpha, title)

    stack.redis.stop()
    try:
        started = time.monotonic()
        response = escalate(url, alpha, session_id)
        elapsed = time.monotonic() - started
        assert response.status_code == 201, response.text
        assert elapsed < 1.0, f"escalate took {elapsed:.3f} s with Redis stopped"
    finally:
        stack.redis.start()
    handoff = response.json()

    # The outbox relay (beat, every 5 s) publishes it once the broker answers again.
    received = senior.wait("handoff.created", handoff["id"], timeout=60)
    assert received["id"] == handoff["id"]
    offline = sorted([alpha.users["admin"]["email"], alpha.users["eng2"]["email"]])
    wait_for(lambda: len(mail_about(stack.smtp, title)) >= 2, timeout=60)
    emails_settled(stack, alpha, handoff["id"])
    socket_rows_sent(url, alpha, handoff["id"])
    barrier(url, alpha, seniors=(senior,))
    assert recipients(mail_about(stack.smtp, title)) == offline
    assert senior.handoff_events(handoff["id"]) == ["handoff.created"]


@pytest.mark.timeout(240)
def test_escalation_with_redis_frozen_answers_at_once_and_the_worker_keeps_consuming(
    stack, listeners
):
    """Redis paused (SIGSTOP: it accepts connections but answers nothing) while the worker
    is busy with a burst of escalations, then resumed: nothing is lost, and the worker
    goes on consuming (a command timing out mid-consume can wedge it; see celery_config)."""
    alpha, url = stack.alpha, stack.web_a.url
    senior = Listener(url, alpha.tokens["eng2"])
    listeners.append(senior)
    burst = [new_session(url, alpha, f"Burst before the freeze #{n}") for n in range(8)]
    session_id = new_session(url, alpha, "Escalated while Redis was frozen")
    wait_for(stack.redis.ping, timeout=10)

    handoff_ids = []
    for burst_session in burst:  # the worker is dispatching and acknowledging these ...
        response = escalate(url, alpha, burst_session)
        assert response.status_code == 201, response.text
        handoff_ids.append(response.json()["id"])
    stack.redis.process.send_signal(signal.SIGSTOP)  # ... when Redis stops answering
    try:
        started = time.monotonic()
        response = escalate(url, alpha, session_id)
        elapsed = time.monotonic() - started
        time.sleep(1.5)
    finally:
        stack.redis.process.send_signal(signal.SIGCONT)
    assert response.status_code == 201, response.text
    assert elapsed < 1.0, f"escalate took {elapsed:.3f} s with Redis frozen"
    handoff_ids.append(response.json()["id"])

    for handoff_id in handoff_ids:
        senior.wait("handoff.created", handoff_id, timeout=60)
    # The worker still consumes: a new escalation goes straight through.
    after = new_handoff(url, alpha, "Escalated after Redis thawed")
    senior.wait("handoff.created", after["id"], timeout=15)


# --------------------------------------------------------------------------- message queue down


def test_a_failed_socketio_publish_is_retried_until_it_arrives(
    stack_env, web_server, celery_worker, tmp_path: Path
):
    """The Socket.IO message queue on its own Redis, stopped while the broker runs: the
    worker's emit fails, the delivery shows `retrying`; Redis back, the event arrives once."""
    queue = RedisServer(data_dir=tmp_path / "queue-redis").start()
    try:
        extra = {"SOCKETIO_MESSAGE_QUEUE": queue.url, **FAST_PRESENCE}
        web = web_server(extra)
        celery_worker(extra)
        tenant = make_tenant(stack_env, web.url, "gamma")
        senior = Listener(web.url, tenant.tokens["eng"])
        try:
            queue.stop()
            handoff = new_handoff(web.url, tenant, "Message queue outage")

            def socket_delivery() -> dict | None:
                path = f"/escalations/{handoff['id']}/deliveries"
                items = get_json(web.url, tenant, path)["items"]
                return next((i for i in items if i["channel"] == "socket"), None)

            retrying = wait_for(
                lambda: (d := socket_delivery()) and d["status"] == "retrying" and d, timeout=20
            )
            assert retrying["attempts"] >= 1
            assert "unreachable" in retrying["last_error"]
            assert senior.handoff_events(handoff["id"]) == []

            queue.start()
            senior.wait("handoff.created", handoff["id"], timeout=60)
            sent = wait_for(lambda: (d := socket_delivery()) and d["status"] == "sent" and d)
            assert sent["attempts"] >= 2
            barrier(web.url, tenant, seniors=(senior,))
            assert senior.handoff_events(handoff["id"]) == ["handoff.created"]
        finally:
            senior.close()
    finally:
        queue.stop()

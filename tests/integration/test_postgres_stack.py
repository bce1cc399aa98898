"""The real processes on a PostgreSQL of their own: web (eventlet with psycogreen), a prefork
worker and beat, started with the plain `postgresql://` URL. Emails with retries, the live
event, metrics added up across processes, ids in JSON logs, and last, PostgreSQL stopped
and started again under them.

The server is private to this module (devstack.postgres on another port), never the
shared TEST_POSTGRES_URL one, because a test here stops it.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.integration import broker
from tests.integration.services import (
    BEAT_READY,
    ManagedProcess,
    PrivatePostgres,
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
    wait_for,
    web_command,
    worker_command,
)
from tests.integration.test_realtime import Listener, Tenant, make_tenant, new_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.timeout(240),
]

METRICS_TOKEN = "integration-metrics-token"
FAST = {
    "EMAIL_FIRST_RETRY_SECONDS": "1",
    "EMAIL_MAX_BACKOFF_SECONDS": "2",
    "DELIVERY_SWEEP_GRACE_SECONDS": "3",
    "OUTBOX_RELAY_AFTER_SECONDS": "2",
    "SMTP_TIMEOUT": "2",
}


@dataclass
class PgStack:
    postgres: PrivatePostgres
    smtp: SmtpSink
    web: ManagedProcess
    worker: ManagedProcess
    beat: ManagedProcess
    group: ProcessGroup
    tenant: Tenant
    redis: RedisServer

    @property
    def url(self) -> str:
        assert self.web.url is not None
        return self.web.url

    def escalate(self, title: str, request_id: str | None = None) -> requests.Response:
        session_id = new_session(self.url, self.tenant, title)
        headers = {**self.tenant.auth("tech"), "X-Request-ID": request_id or uuid.uuid4().hex}
        return requests.post(
            f"{self.url}/api/v1/sessions/{session_id}/escalate",
            json={"reason": "The VPN client crashes at login"},
            headers=headers,
            timeout=10,
        )

    def emails_about(self, title: str) -> Counter[str]:
        return Counter(r for m in self.smtp.messages if title in m.subject for r in m.rcpt_tos)

    def email_rows(self, handoff_id: int) -> list[dict]:
        response = requests.get(
            f"{self.url}/api/v1/escalations/{handoff_id}/deliveries",
            headers=self.tenant.auth("admin"),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return [row for row in response.json()["items"] if row["channel"] == "email"]

    def wait_email_tasks_done(self, handoff_id: int) -> None:
        """Every send, retry and sweep that could send the handoff's emails (again) has run."""
        client = self.redis.client()
        try:
            ids = [row["id"] for row in self.email_rows(handoff_id)]
            broker.wait_tasks_done(client, ids, timeout=30)
        finally:
            client.close()

    def offline_seniors(self) -> list[str]:
        return sorted([self.tenant.users["admin"]["email"], self.tenant.users["eng2"]["email"]])


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgStack]:
    if postgres_url_from_env() is None:
        pytest.skip("PostgreSQL not configured: set TEST_POSTGRES_URL (make test does)")
    tmp = tmp_path_factory.mktemp("pg-stack")
    postgres = PrivatePostgres()
    postgres.start()
    redis = RedisServer(data_dir=tmp / "redis").start()
    smtp = SmtpSink().start()
    group = ProcessGroup(tmp / "logs")
    try:
        metrics_dir = tmp / "metrics"
        metrics_dir.mkdir()
        port = free_port()
        env = app_env(
            postgres.plain_url,
            redis.url,
            port=port,
            LOG_FORMAT="json",
            METRICS_TOKEN=METRICS_TOKEN,
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            **FAST,
            **smtp.env(),
        )
        flask_cli(env, "db", "upgrade")
        url = f"http://127.0.0.1:{port}"
        web = group.start(web_command(), env, ready_check=http_ready(f"{url}/healthz"), name="web")
        web.url = url
        name = f"pg-{port}"
        worker = group.start(
            worker_command(pool="prefork", concurrency=2, name=name),
            env,
            ready_check=log_contains(rf"{name}@\S+ ready\."),
            name="worker",
        )
        beat = group.start(
            beat_command(tmp / "beat-schedule"), env, ready_check=log_contains(BEAT_READY)
        )
        tenant = make_tenant(env, url, "pgstack")
        yield PgStack(postgres, smtp, web, worker, beat, group, tenant, redis)
    finally:
        group.stop_all()
        smtp.stop()
        redis.stop()
        postgres.destroy()


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "pg_stack" in request.fixturenames:
        print("\n" + request.getfixturevalue("pg_stack").group.describe_logs(lines=60))


def _json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def _scrape(url: str) -> str:
    response = requests.get(
        f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.text


def _sample(exposition: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith(prefix) and not line.startswith("#")
    )


# --------------------------------------------------------------------------- tests


def test_live_event_and_retried_emails_arrive_once(pg_stack: PgStack) -> None:
    title = "PG: Outlook profile corrupt"
    senior = Listener(pg_stack.url, pg_stack.tenant.tokens["eng"])
    try:
        pg_stack.smtp.down()
        response = pg_stack.escalate(title)
        assert response.status_code == 201, response.text
        handoff_id = response.json()["id"]
        senior.wait("handoff.created", handoff_id)
        # Each email's own attempt refused and recorded (not one the batch did not try).
        wait_for(
            lambda: (rows := pg_stack.email_rows(handoff_id))
            and all(
                r["status"] == "retrying" and "refused" in r["last_error"]
                and not r["last_error"].startswith("Not tried")
                for r in rows
            ),
            timeout=30,
            message="the first attempts refused",
        )  # fmt: skip
        pg_stack.smtp.up()
        wait_for(lambda: len(pg_stack.emails_about(title)) == 2, timeout=30)
        pg_stack.wait_email_tasks_done(handoff_id)  # every retry has run: none sent twice
        assert pg_stack.emails_about(title) == Counter(pg_stack.offline_seniors())
        assert senior.handoff_events(handoff_id) == ["handoff.created"]
    finally:
        senior.close()


def test_metrics_add_up_the_web_and_every_worker_process(pg_stack: PgStack) -> None:
    """Counts its own two escalations (one while SMTP is down) from a baseline, so it holds
    whichever tests ran before it."""
    assert requests.get(f"{pg_stack.url}/metrics", timeout=10).status_code == 401
    base = _scrape(pg_stack.url)
    transient = 'escalation_smtp_errors_total{kind="transient"}'
    pg_stack.smtp.down()
    try:
        assert pg_stack.escalate("PG: metrics, SMTP down").status_code == 201
        wait_for(
            lambda: _sample(_scrape(pg_stack.url), transient) >= _sample(base, transient) + 1,
            timeout=30,
            message="a transient SMTP error counted",
        )
    finally:
        pg_stack.smtp.up()
    assert pg_stack.escalate("PG: metrics").status_code == 201

    def more(text: str, name: str) -> float:
        return _sample(text, name) - _sample(base, name)

    def counted() -> str | None:
        text = _scrape(pg_stack.url)
        sent = more(text, 'escalation_deliveries_total{channel="email",state="sent"}')
        # The mailer counts a send and then observes its lag: wait for both, not between.
        lagged = more(text, "escalation_email_lag_seconds_count")
        return text if sent >= 4 and lagged >= 4 and "escalation_beat_last_tick" in text else None

    text = wait_for(counted, timeout=60, message="email deliveries counted by /metrics")
    assert more(text, "escalation_escalations_created_total") == 2
    assert more(text, 'escalation_deliveries_total{channel="socket",state="sent"}') >= 2
    assert more(text, transient) >= 1
    assert more(text, "escalation_email_lag_seconds_count") >= 4
    assert _sample(text, "escalation_live_fanout_latency_seconds_count") >= 2
    assert 'escalation_celery_queue_depth{queue="email"}' in text
    tick = _sample(text, "escalation_beat_last_tick_timestamp_seconds")
    assert time.time() - tick < 30


def test_logs_carry_the_request_id_and_the_handoff_id_through_web_and_worker(
    pg_stack: PgStack,
) -> None:
    request_id = f"it-{uuid.uuid4().hex[:12]}"
    response = pg_stack.escalate("PG: log ids", request_id=request_id)
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == request_id
    handoff_id = response.json()["id"]

    def worker_lines() -> list[dict]:
        return [
            line
            for line in _json_lines(pg_stack.worker.log_path)
            if line.get("handoff_id") == handoff_id and "Email delivery" in line["message"]
        ]

    emailed = wait_for(lambda: len(worker_lines()) >= 2 and worker_lines(), timeout=30)
    assert all(line["process"] == "worker" for line in emailed)
    web_lines = [
        line for line in _json_lines(pg_stack.web.log_path) if line.get("request_id") == request_id
    ]
    assert any(line.get("handoff_id") == handoff_id for line in web_lines), web_lines


def test_database_gone_right_after_a_send_the_email_is_recorded_sent_not_sent_again(
    pg_stack: PgStack,
) -> None:
    """PostgreSQL stops while the SMTP server holds the first message, before its 250: the
    worker learns of the send with nowhere to write it. It keeps trying (for the rest of its
    lease) and writes it once PostgreSQL is back, so nothing sends that email again."""
    title = "PG: gone right after the send"
    stopped = threading.Event()

    def stop_postgres_once(line: str) -> None:  # the sink's thread, before it answers 250
        if title in line and not stopped.is_set():
            pg_stack.postgres.stop()
            stopped.set()

    log_offset = len(pg_stack.worker.log_text())
    pg_stack.smtp.announce = stop_postgres_once
    try:
        response = pg_stack.escalate(title)
        assert response.status_code == 201, response.text
        handoff_id = response.json()["id"]
        assert stopped.wait(30), "no email about the handoff reached the SMTP server"
        # The worker tried to record the send and found no database.
        wait_for(
            lambda: re.search(
                r"Database unreachable|OperationalError", pg_stack.worker.log_text()[log_offset:]
            ),
            timeout=30,
            message="the worker's write after the send failing",
        )
    finally:
        pg_stack.smtp.announce = None
        pg_stack.postgres.start()
    wait_for(lambda: requests.get(f"{pg_stack.url}/readyz", timeout=5).ok, timeout=30)

    # Nobody is connected: the account's three seniors are emailed.
    seniors = {pg_stack.tenant.users[who]["email"] for who in ("admin", "eng", "eng2")}
    rows = wait_for(
        lambda: (
            (rows := pg_stack.email_rows(handoff_id))
            and {row["recipient"]["email"] for row in rows} == seniors
            and all(row["status"] == "sent" for row in rows)
            and rows
        ),
        timeout=30,
        message="every email recorded sent",
    )
    assert [row["attempts"] for row in rows] == [1, 1, 1]
    pg_stack.wait_email_tasks_done(handoff_id)
    assert pg_stack.emails_about(title) == Counter(seniors)


def test_postgres_restart_gives_503_then_everything_recovers(pg_stack: PgStack) -> None:
    """Runs last in this module: it stops the module's PostgreSQL."""
    pg_stack.postgres.stop()
    try:
        for n in range(3):
            started = time.monotonic()
            session = requests.post(
                f"{pg_stack.url}/api/v1/sessions/1/escalate",
                json={"reason": "during the outage"},
                headers={**pg_stack.tenant.auth("tech"), "Idempotency-Key": f"outage-{n}"},
                timeout=10,
            )
            assert time.monotonic() - started < 3
            assert session.status_code == 503, session.text
            assert session.json()["error"]["code"] == "unavailable"
            assert int(session.headers["Retry-After"]) > 0
        ready = requests.get(f"{pg_stack.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["failed"] == ["database"]
    finally:
        pg_stack.postgres.start()
    back = time.monotonic()
    wait_for(lambda: requests.get(f"{pg_stack.url}/readyz", timeout=5).ok, timeout=30)
    print(f"\nweb ready {time.monotonic() - back:.2f} s after PostgreSQL was back")

    title = "PG: after the restart"
    senior = Listener(pg_stack.url, pg_stack.tenant.tokens["eng"])
    try:
        response = pg_stack.escalate(title)
        assert response.status_code == 201, response.text
        senior.wait("handoff.created", response.json()["id"], timeout=30)
        wait_for(lambda: len(pg_stack.emails_about(title)) == 2, timeout=30)
        pg_stack.wait_email_tasks_done(response.json()["id"])
        assert pg_stack.emails_about(title) == Counter(pg_stack.offline_seniors())
    finally:
        senior.close()
    for proc in (pg_stack.web, pg_stack.worker, pg_stack.beat):
        assert proc.alive and proc.starts == 1, proc

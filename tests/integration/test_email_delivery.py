"""Escalation emails through the real stack: web (`python wsgi.py`), a Celery worker
(`celery -A celery_config worker`), Redis and an SMTP server (aiosmtpd).

One stack per module: the SMTP sink changes mode between tests, each test escalates its own
session and counts only the mail about its own handoff (the X-Escalation-Handoff-Id header).
Retry backoff, lease and sweep grace are shortened through the environment so faults heal
in seconds; every wait is bounded.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from sqlalchemy import select

from tests.factories import app_config, wired_app
from tests.integration import broker
from tests.integration.services import (
    WORKER_READY,
    ManagedProcess,
    ProcessGroup,
    RedisServer,
    SmtpSink,
    app_env,
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

FAST_EMAIL_SETTINGS = {
    "SMTP_TIMEOUT": "1",
    "EMAIL_FIRST_RETRY_SECONDS": "1",
    "EMAIL_MAX_BACKOFF_SECONDS": "2",
    "DELIVERY_LEASE_SECONDS": "6",  # > 4 x SMTP_TIMEOUT plus the connection set-up
    "DELIVERY_SWEEP_GRACE_SECONDS": "1",
    # Redis is up throughout, and this stack runs no beat to relay an outbox event whose
    # publish gave up: on a busy machine the web's first connection to Redis can take longer
    # than the production budget (0.5 s), which left the first handoff undispatched.
    "PUBLISH_TIMEOUT_SECONDS": "5",
}
WAIT = 30.0  # the longest any condition below may take before the test fails


@dataclass
class Person:
    id: int
    email: str
    token: str


@dataclass
class Stack:
    env: dict[str, str]
    url: str
    sink: SmtpSink
    group: ProcessGroup
    worker: ManagedProcess
    people: dict[str, Person] = field(default_factory=dict)
    app: object = None  # a Flask app on the same database and broker, for the test's own use
    broker: object = None  # a redis.Redis on the broker

    def api(self, method: str, path: str, who: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.people[who].token}"}
        return requests.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs
        )

    def escalate(self, title: str, reason: str = "Out of ideas") -> tuple[dict, float]:
        """A technician's session, escalated; returns the handoff and the escalate latency."""
        session = self.api(
            "POST", "/sessions", "tech",
            json={"title": title, "snapshot": {"device": "PC-7"},
                  "ai_assessment": {"summary": "Probably the NIC driver", "confidence": 0.7}},
        )  # fmt: skip
        assert session.status_code == 201, session.text
        started = time.perf_counter()
        response = self.api(
            "POST", f"/sessions/{session.json()['id']}/escalate", "tech", json={"reason": reason}
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 201, response.text
        return response.json(), elapsed

    def email_rows(self, handoff_id: int) -> dict[str, dict]:
        """The handoff's email deliveries from the API, keyed by recipient email."""
        response = self.api("GET", f"/escalations/{handoff_id}/deliveries", "admin")
        assert response.status_code == 200, response.text
        return {
            row["recipient"]["email"]: row
            for row in response.json()["items"]
            if row["channel"] == "email"
        }

    def wait_rows(self, handoff_id: int, predicate, what: str, timeout: float = WAIT) -> dict:
        def check():
            rows = self.email_rows(handoff_id)
            return rows if rows and predicate(rows) else None

        return wait_for(check, timeout=timeout, interval=0.2, message=what)

    def mail_about(self, handoff_id: int) -> list:
        return [m for m in self.sink.messages if m["X-Escalation-Handoff-Id"] == str(handoff_id)]

    def sweep(self) -> None:
        """What beat does every 30 s, on demand."""
        from workers.names import SWEEP_DELIVERIES

        self.app.extensions["celery"].send_task(SWEEP_DELIVERIES)

    def tasks_about(self, delivery_ids: list[int]) -> list:
        return broker.tasks_about(self.broker, delivery_ids)

    def wait_tasks_done(self, delivery_ids: list[int], ignore: frozenset[str] = frozenset()):
        """Every task that could send one of these deliveries again has run."""
        broker.wait_tasks_done(self.broker, delivery_ids, ignore, timeout=WAIT)

    def delivery_ids(self, handoff_id: int) -> list[int]:
        return sorted(row["id"] for row in self.email_rows(handoff_id).values())


def _offline_seniors(stack: Stack) -> set[str]:
    return {stack.people["admin"].email, stack.people["eng"].email}


def _all(status: str, count: int = 2):
    return lambda rows: len(rows) == count and all(r["status"] == status for r in rows.values())


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory) -> Iterator[Stack]:
    if not redis_server.running:
        redis_server.start()
    redis_server.flushall()
    tmp = tmp_path_factory.mktemp("email-stack")
    sink = SmtpSink().start()
    port = free_port()
    database_url = sqlite_url(tmp / "escalation.db")
    env = app_env(database_url, redis_server.url, port=port, **FAST_EMAIL_SETTINGS, **sink.env())
    flask_cli(env, "db", "upgrade")
    group = ProcessGroup(tmp / "logs")
    stack = None
    try:
        url = f"http://127.0.0.1:{port}"
        group.start(web_command(), env, ready_check=http_ready(f"{url}/healthz"), name="web")
        worker = group.start(
            worker_command(pool="prefork", concurrency=2, name=f"email-{port}"),
            env,
            ready_check=log_contains(WORKER_READY),
            name="worker",
        )
        stack = Stack(env=env, url=url, sink=sink, group=group, worker=worker)
        stack.app = wired_app(
            app_config(database_url, REDIS_URL=redis_server.url, CELERY_BROKER_URL=redis_server.url)
        )
        stack.broker = redis_server.client()
        _people(stack)
        yield stack
    finally:
        group.stop_all()
        sink.stop()
        if stack is not None and stack.broker is not None:
            stack.broker.close()
        if stack is not None and stack.app is not None:
            with stack.app.app_context():
                from models import db

                db.engine.dispose()


def _people(stack: Stack) -> None:
    """Acme: an admin (owner), an engineer and a technician; Other: an admin and an engineer."""
    from models.accounts import create_account, create_user

    with stack.app.app_context():
        for name, slug, users in (
            ("Acme MSP", "acme", [("eng", "engineer"), ("tech", "technician")]),
            ("Other MSP", "other", [("other_eng", "engineer")]),
        ):
            owner_key = "admin" if slug == "acme" else "other_admin"
            email = f"{owner_key}@{slug}.test"
            account, owner, token = create_account(name, owner_key.title(), email)
            stack.people[owner_key] = Person(owner.id, email, token)
            for who, role in users:
                email = f"{who}@{slug}.test"
                user, token = create_user(account, who.title(), email, role, None)
                stack.people[who] = Person(user.id, email, token)


@pytest.fixture(autouse=True)
def healthy_smtp(request, stack: Stack):
    """Each test starts with a working SMTP server; the stack's logs are shown if it failed."""
    stack.sink.ok()
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("\n" + stack.group.describe_logs(lines=60))


def test_each_offline_senior_gets_exactly_one_email(stack: Stack):
    handoff, _ = stack.escalate("Outlook keeps asking for a password")
    rows = stack.wait_rows(handoff["id"], _all("sent"), "both emails sent")
    assert set(rows) == _offline_seniors(stack)  # not the technician, not the other account
    assert all(
        r["attempts"] == 1 and r["last_error"] is None and r["sent_at"] for r in rows.values()
    )

    stack.wait_tasks_done(sorted(r["id"] for r in rows.values()))
    mail = stack.mail_about(handoff["id"])
    assert Counter(r for m in mail for r in m.rcpt_tos) == Counter(_offline_seniors(stack))
    everyone_else = {p.email for w, p in stack.people.items() if w not in ("admin", "eng")}
    assert not [m for m in stack.sink.messages if set(m.rcpt_tos) & everyone_else]
    message = mail[0]
    assert message.subject == "[P3] Outlook keeps asking for a password"
    for body in (message.text, message.html):
        assert "Out of ideas" in body and "Probably the NIC driver" in body
        assert f"{stack.url}/pilot/{handoff['session_id']}" in body
    assert len({m["Message-ID"] for m in mail}) == 2


def _refused_and_recorded(rows: dict[str, dict]) -> bool:
    """Each row's own attempt was refused and recorded: `retrying` with the refusal as its
    error. A row the batch did not try ("Not tried: ...", no attempt counted) does not
    count, nor one whose retry has been claimed (attempts already counted) and not yet
    recorded: that attempt may still find the server back."""
    return _all("retrying")(rows) and all(
        r["attempts"] >= 1 and r["last_error"].startswith("SMTP connection to the server failed")
        for r in rows.values()
    )


def test_smtp_down_escalation_still_answers_then_retries_and_delivers_once(stack: Stack):
    stack.sink.down()
    handoff, elapsed = stack.escalate("VPN drops every hour")
    print(f"\nescalate with SMTP down: {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
    rows = stack.wait_rows(handoff["id"], _refused_and_recorded, "each delivery refused once")
    for row in rows.values():
        assert "refused" in row["last_error"].lower(), row["last_error"]
        assert row["sent_at"] is None and row["next_attempt_at"] is not None

    stack.sink.up()
    rows = stack.wait_rows(handoff["id"], _all("sent"), "deliveries sent after SMTP is back")
    assert all(r["attempts"] >= 2 and r["last_error"] is None for r in rows.values())
    # Every retry scheduled while the server was down has run by now: none sent twice.
    stack.wait_tasks_done(stack.delivery_ids(handoff["id"]))
    mail = stack.mail_about(handoff["id"])
    assert Counter(r for m in mail for r in m.rcpt_tos) == Counter(_offline_seniors(stack))


def test_smtp_stalled_escalation_still_answers(stack: Stack):
    stack.sink.stall()
    handoff, elapsed = stack.escalate("Printer offline on floor 3")
    print(f"\nescalate with SMTP stalled: {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
    rows = stack.wait_rows(handoff["id"], _all("retrying"), "deliveries retrying")
    assert all("timed out" in r["last_error"] for r in rows.values()), rows
    stack.sink.up()
    stack.wait_rows(handoff["id"], _all("sent"), "deliveries sent after the server answers")
    stack.wait_tasks_done(stack.delivery_ids(handoff["id"]))
    assert len(stack.mail_about(handoff["id"])) == 2


def test_smtp_550_fails_at_once_and_is_not_retried(stack: Stack):
    stack.sink.reject()
    refused_before = len(stack.sink.refusals)
    handoff, _ = stack.escalate("Server room is too warm")
    stack.wait_rows(handoff["id"], _all("failed"), "deliveries failed")
    stack.wait_tasks_done(stack.delivery_ids(handoff["id"]))  # no retry was left waiting
    rows = stack.email_rows(handoff["id"])
    for email, row in rows.items():
        assert (row["status"], row["attempts"], row["sent_at"]) == ("failed", 1, None)
        assert "550" in row["last_error"] and email in row["last_error"]
    assert len(stack.sink.refusals) - refused_before == 2  # one RCPT per recipient, ever
    assert stack.mail_about(handoff["id"]) == []


def test_smtp_451_retries_until_the_server_accepts(stack: Stack):
    stack.sink.tempfail()
    handoff, _ = stack.escalate("Shared drive is read-only")
    stack.wait_rows(
        handoff["id"],
        lambda rows: _all("retrying")(rows) and all(r["attempts"] >= 2 for r in rows.values()),
        "at least two attempts each",
    )
    rows = stack.email_rows(handoff["id"])
    assert all("451" in r["last_error"] for r in rows.values()), rows
    stack.sink.ok()
    stack.wait_rows(handoff["id"], _all("sent"), "sent once the server accepts")
    stack.wait_tasks_done(stack.delivery_ids(handoff["id"]))
    assert len(stack.mail_about(handoff["id"])) == 2


def test_smtp_drops_the_connection_after_taking_the_message_it_is_sent_again_same_id(
    stack: Stack,
):
    """The server takes the message and drops the connection before its reply: the worker
    cannot know it arrived, so the delivery is retried, never lost. At least once: each
    attempt that reached the server left a copy there, and every copy carries the
    delivery's one Message-ID, for the receiver to drop the extra ones."""
    stack.sink.drop()
    handoff, _ = stack.escalate("Mail server hangs up after DATA")
    seniors = _offline_seniors(stack)

    def dropped_and_recorded(rows: dict[str, dict]) -> bool:
        reached = {r for m in stack.mail_about(handoff["id"]) for r in m.rcpt_tos}
        return (
            _all("retrying")(rows)
            and reached == seniors  # each message reached the server ...
            and all(r["last_error"].startswith("SMTP ") for r in rows.values())  # ... unanswered
        )

    rows = stack.wait_rows(handoff["id"], dropped_and_recorded, "each message taken, then dropped")
    for row in rows.values():
        assert row["sent_at"] is None and row["attempts"] >= 1, row

    stack.sink.ok()
    rows = stack.wait_rows(handoff["id"], _all("sent"), "sent once the server answers")
    stack.wait_tasks_done(stack.delivery_ids(handoff["id"]))
    mail = stack.mail_about(handoff["id"])
    for email, row in rows.items():
        copies = [m for m in mail if m.rcpt_tos == [email]]
        # One copy per attempt: the dropped ones and the one the server answered.
        assert len(copies) == row["attempts"] >= 2, (email, row, len(copies))
        assert len({m["Message-ID"] for m in copies}) == 1
        assert row["last_error"] is None and row["sent_at"]


def test_sweeper_sends_a_delivery_whose_task_never_reached_the_broker(stack: Stack):
    """The dispatch wrote the rows but its SEND_EMAIL tasks were lost (here: never sent)."""
    from models import db, deliveries, escalations
    from models.entities import OutboxEvent, User
    from models.sessions import create_session
    from web import create_app

    # A web app with no Celery binding: its commits publish nothing, like a lost task.
    unwired = create_app(dict(stack.app.config))
    with unwired.app_context():
        tech = db.session.get(User, stack.people["tech"].id)
        session = create_session(tech, "Lost task", {"device": "PC-9"}, {"summary": "Gist"})
        handoff, _ = escalations.escalate(tech, session.id, "Nobody told the broker")
        event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.handoff_id == handoff.id))
        rows = deliveries.email_deliveries(
            event, [stack.people["admin"].id, stack.people["eng"].id]
        )
        handoff_id = handoff.id
        assert [r.status for r in rows] == ["pending", "pending"]
        db.session.remove()

    # Nothing but the sweeper can send them: the broker holds no task about them.
    ids = stack.delivery_ids(handoff_id)
    assert stack.tasks_about(ids) == []
    assert stack.mail_about(handoff_id) == []
    for row in stack.email_rows(handoff_id).values():
        assert (row["status"], row["attempts"], row["last_error"], row["sent_at"]) == (
            "pending", 0, None, None
        )  # fmt: skip

    def swept_and_sent():
        stack.sweep()
        return _all("sent")(stack.email_rows(handoff_id))

    wait_for(swept_and_sent, timeout=WAIT, interval=1.0, message="the sweeper's resend")
    stack.wait_tasks_done(ids)  # every sweep's resend has run: a second copy would be here
    assert len(stack.mail_about(handoff_id)) == 2


def _mid_send(rows: list) -> dict[int, int]:
    """The email deliveries a sender has claimed and not recorded yet (id -> attempts so
    far). A claim sets a lease of its own; one waiting for its retry has the lease of that
    retry's time (`locked_until == next_attempt_at`), and a recorded one has none."""
    from models.db import utcnow

    now = utcnow()
    return {
        r.id: r.attempts
        for r in rows
        if r.channel == "email"
        and r.status in ("pending", "retrying")
        and r.locked_until is not None
        and r.locked_until > now
        and r.locked_until != r.next_attempt_at
    }


def _kill_mid_send(stack: Stack, ids: list[int]) -> dict[int, int]:
    """SIGKILL the worker while it waits on the stalled SMTP server for a delivery it has
    claimed. At each new connection to the server the worker is frozen (SIGSTOP) and the
    rows are read: only if one is claimed and unrecorded is it killed, else it goes on
    (SIGCONT) and the next connection (a retry) is tried. Returns the claimed rows."""
    from models import db
    from models.entities import Delivery

    deadline = time.monotonic() + WAIT
    seen = stack.sink.stalled_connections
    while time.monotonic() < deadline:
        if stack.sink.stalled_connections == seen:
            time.sleep(0.005)
            continue
        stack.worker.send_signal(signal.SIGSTOP)
        seen = stack.sink.stalled_connections
        with stack.app.app_context():
            rows = list(db.session.scalars(select(Delivery).where(Delivery.handoff_id.in_(ids))))
            assert all(r.status != "sent" for r in rows if r.channel == "email")
            claimed = _mid_send(rows)
            db.session.remove()
        if claimed:
            stack.worker.kill(signal.SIGKILL)
            return claimed
        stack.worker.send_signal(signal.SIGCONT)
    raise AssertionError("no delivery was being worked on at any connection to the server")


def test_worker_killed_mid_send_every_email_goes_out_exactly_once(stack: Stack):
    """SIGKILL while one delivery is mid-send (SMTP stalled) and others wait their turn."""
    from models import db
    from models.entities import Delivery

    stack.sink.stall()
    handoffs = [stack.escalate(f"Kill drill {n}")[0] for n in range(3)]
    ids = [h["id"] for h in handoffs]
    wait_for(
        lambda: all(len(stack.email_rows(i)) == 2 for i in ids), timeout=WAIT, message="6 rows"
    )
    claimed = _kill_mid_send(stack, ids)
    # What the dead worker had taken stays unacknowledged until the broker's visibility
    # timeout (an hour): not to be waited for. The sweeper resends those rows instead.
    dead = frozenset(task.id for task in broker.unfinished_tasks(stack.broker, ()) if task.taken)

    stack.sink.ok()
    stack.worker.start()

    def all_sent():
        stack.sweep()
        return all(_all("sent")(stack.email_rows(i)) for i in ids)

    wait_for(all_sent, timeout=60, interval=1.0, message="every delivery sent after the restart")
    delivery_ids = sorted(d for i in ids for d in stack.delivery_ids(i))
    stack.wait_tasks_done(delivery_ids, ignore=dead)  # every resend and sweep has run
    with stack.app.app_context():
        # Their task died with the worker: the sweeper re-sent them once the lease ran out,
        # and they were claimed once more.
        after = {d: db.session.get(Delivery, d).attempts for d in claimed}
        db.session.remove()
    assert after == {d: attempts + 1 for d, attempts in claimed.items()}
    for handoff_id in ids:
        mail = stack.mail_about(handoff_id)
        per_recipient = Counter(r for m in mail for r in m.rcpt_tos)
        assert per_recipient == Counter(_offline_seniors(stack)), (handoff_id, per_recipient)
        # One Message-ID per delivery: a receiver could drop a resend even if one happened.
        ids_per_recipient = {
            r: {m["Message-ID"] for m in mail if r in m.rcpt_tos} for r in per_recipient
        }
        assert all(len(v) == 1 for v in ids_per_recipient.values())

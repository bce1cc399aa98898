"""Sending one email delivery against a real SMTP server (aiosmtpd in this process).

The task runs in-process here; the Celery broker is in memory, so a scheduled retry or a
sweep can be read back from the queue. tests/integration/test_email_*.py run the same code
in a real worker against Redis.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from models import db, deliveries
from models.db import utcnow
from models.entities import Delivery, Handoff, OutboxEvent, User
from models.handoff_steps import run_due_steps
from models.notification_rule import ADMIN_STEP, BUSINESS_HOURS, Chosen
from tests.factories import (
    app_config,
    both_databases,
    make_tenant,
    new_handoff,
    running_app,
    wired_app,
)
from tests.integration.services import SmtpSink
from workers import mail as email_worker
from workers.names import QUEUE_EMAIL, SEND_EMAIL


@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as server:
        yield server


@pytest.fixture
def smtp(sink):
    sink.ok()
    sink.clear()
    return sink


def email_config(database_url: str, sink: SmtpSink, **overrides) -> dict:
    return app_config(
        database_url,
        SMTP_HOST=sink.host,
        SMTP_PORT=sink.port,
        SMTP_STARTTLS=False,
        SMTP_USERNAME="",
        SMTP_PASSWORD="",
        # Generous: a busy test machine can take a while to greet; the tests about
        # timeouts set their own.
        SMTP_TIMEOUT=3.0,
        MAIL_FROM="Escalation Mode <escalations@desk.example.com>",
        BASE_URL="https://desk.example.com",
        **overrides,
    )


@pytest.fixture
def app(database_url, sink):
    with running_app(email_config(database_url, sink)) as app:
        drain_queue(app)
        yield app


@pytest.fixture
def tenant(app):
    return make_tenant("Alpha MSP")


def drain_queue(app) -> list[dict]:
    """Take every task message waiting in the in-memory email queue."""
    taken = []
    with app.extensions["celery"].connection_for_read() as conn:
        channel = conn.channel()
        while (message := channel.basic_get(QUEUE_EMAIL, no_ack=True)) is not None:
            taken.append({"task": message.headers["task"], "eta": message.headers.get("eta"),
                          "args": message.headers.get("argsrepr")})  # fmt: skip
    return taken


def email_rows(client, tenant, who=("eng", "admin")) -> list[Delivery]:
    handoff = new_handoff(client, tenant)
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.handoff_id == handoff["id"]))
    return deliveries.email_deliveries(event, [tenant.users[w] for w in who])


def run(delivery: Delivery) -> str:
    """What the worker does with one SEND_EMAIL message."""
    status = email_worker.send_email(delivery.id)
    db.session.expire_all()
    return status


@both_databases
def test_a_dispatchs_email_rows_go_in_as_one_cached_insert(client, tenant):
    """One INSERT per dispatch, compiled once: a statement that carries its rows in
    VALUES has no cache key, and compiling it afresh for every escalation was most of
    what a dispatch cost the worker."""
    from sqlalchemy import event
    from sqlalchemy.engine.default import CACHE_HIT

    events = []
    for _ in range(3):
        handoff = new_handoff(client, tenant)
        events.append(
            db.session.scalar(select(OutboxEvent).where(OutboxEvent.handoff_id == handoff["id"]))
        )
    inserts = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES"):
            inserts.append(context.cache_hit)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        rows = [deliveries.email_deliveries(e, [tenant.users["eng"], tenant.users["admin"]])
                for e in events]  # fmt: skip
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert [len(made) for made in rows] == [2, 2, 2]
    assert len(inserts) == 3  # one statement per dispatch, both rows in it
    assert inserts[1:] == [CACHE_HIT, CACHE_HIT]


@both_databases
def test_a_batch_reads_the_handoffs_session_once_and_the_handoff_for_each_email(
    client, tenant, smtp
):
    """The handoff is read fresh before each email (a claim meanwhile makes a reminder
    moot); the session it came from, whose priority and customer the subject shows, once
    per batch."""
    from sqlalchemy import event

    rows = email_rows(client, tenant)
    db.session.remove()
    reads = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        text = " ".join(statement.upper().split())
        if text.startswith("SELECT") and " FROM " in text:
            reads.append(text.split(" FROM ", 1)[1].split()[0])

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        outcomes = email_worker.send_emails([row.id for row in rows])
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert outcomes == {"sent": 2} and len(smtp.messages) == 2
    assert reads.count("HANDOFFS") == 2
    assert reads.count("FLOW_SESSIONS") == 1


@both_databases
def test_sends_one_message_and_marks_it_sent(client, tenant, smtp):
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert (run(delivery), delivery.last_error) == ("sent", None)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert delivery.sent_at is not None and delivery.locked_until is None
    [mail] = smtp.messages
    assert mail.rcpt_tos == ["eng@alpha-msp.example"]
    assert mail.mail_from == "escalations@desk.example.com"
    assert mail.subject == "[P3] VPN drops every hour"
    assert "Stuck after the VPN reset" in mail.text and "Likely a stale VPN profile" in mail.text
    session_id = db.session.get(Handoff, delivery.handoff_id).session_id
    assert f"https://desk.example.com/pilot/{session_id}" in mail.text
    assert mail.html is not None and "Stuck after the VPN reset" in mail.html
    # The first email about a handoff: the one later emails to this senior thread under.
    expected_id = f"<escalation-{delivery.handoff_id}.to-{delivery.recipient_id}@desk.example.com>"
    assert mail["Message-ID"] == expected_id
    assert mail["In-Reply-To"] is None


@both_databases
def test_a_duplicate_task_sends_nothing_more(client, tenant, smtp):
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert run(delivery) == "sent"
    assert run(delivery) == "skipped"
    assert len(smtp.messages) == 1 and delivery.attempts == 1


@both_databases
def test_one_message_sends_a_dispatchs_emails_each_once_over_one_connection(
    app, client, tenant, smtp
):
    rows = email_rows(client, tenant, who=("eng", "eng2", "admin"))
    assert run(rows[0]) == "sent"  # a retry got there first
    greetings = smtp.greetings

    outcomes = email_worker.send_emails([row.id for row in rows])

    assert outcomes == {"skipped": 1, "sent": 2}
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
        "eng2@alpha-msp.example", "eng@alpha-msp.example", "owner@alpha-msp.example"
    ]  # fmt: skip
    assert smtp.greetings == greetings  # the connection the first send opened carried both
    db.session.expire_all()
    assert {db.session.get(Delivery, row.id).status for row in rows} == {"sent"}
    assert drain_queue(app) == []


@both_databases
def test_in_one_message_each_failed_email_is_retried_on_its_own(app, client, tenant, smtp):
    rows = email_rows(client, tenant, who=("eng", "admin"))
    smtp.tempfail()

    assert email_worker.send_emails([row.id for row in rows]) == {"retrying": 2}

    retries = drain_queue(app)
    assert sorted(r["args"] for r in retries) == sorted(f"[{row.id}]" for row in rows)
    assert {r["task"] for r in retries} == {SEND_EMAIL}


@both_databases
def test_a_delivery_held_by_another_sender_is_left_alone(client, tenant, smtp):
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert deliveries.claim(delivery.id, timedelta(minutes=5)) is not None  # another worker
    assert run(delivery) == "skipped"
    assert smtp.messages == [] and delivery.status == "pending"


def test_smtp_down_schedules_a_retry_within_30_seconds(client, tenant, smtp, app):
    app.config.update(EMAIL_FIRST_RETRY_SECONDS=15.0)  # the default
    [delivery] = email_rows(client, tenant, who=("eng",))
    smtp.down()
    before = utcnow()
    assert run(delivery) == "retrying"
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "Connection" in delivery.last_error or "refused" in delivery.last_error
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 7 <= wait <= 30
    [queued] = drain_queue(app)
    assert queued["task"] == SEND_EMAIL and queued["args"] == f"[{delivery.id}]"
    assert queued["eta"] is not None  # a countdown, not an immediate re-run

    # The retried task, once the server is back, delivers it exactly once.
    smtp.up()
    delivery.next_attempt_at = delivery.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert run(delivery) == "sent"
    assert delivery.attempts == 2 and delivery.last_error is None
    assert len(smtp.messages) == 1


def test_451_is_transient(client, tenant, smtp, app):
    [delivery] = email_rows(client, tenant, who=("eng",))
    smtp.tempfail()
    assert run(delivery) == "retrying"
    assert delivery.status == "retrying" and "451" in delivery.last_error
    assert len(drain_queue(app)) == 1


def test_550_fails_at_once_and_is_not_retried(client, tenant, smtp, app):
    [delivery] = email_rows(client, tenant, who=("eng",))
    smtp.reject()
    assert run(delivery) == "failed"
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "550" in delivery.last_error and "eng@alpha-msp.example" in delivery.last_error
    assert drain_queue(app) == []
    assert run(delivery) == "skipped" and delivery.attempts == 1


def test_a_stalled_server_times_out_and_retries(client, tenant, smtp, app):
    app.config.update(SMTP_TIMEOUT=0.5)
    [delivery] = email_rows(client, tenant, who=("eng",))
    smtp.stall()
    assert run(delivery) == "retrying"
    assert "timed out" in delivery.last_error


def test_a_server_that_hangs_holds_one_email_of_a_batch_not_each(client, tenant, smtp, app):
    app.config.update(SMTP_TIMEOUT=0.5)
    rows = email_rows(client, tenant, who=("eng", "eng2", "admin"))
    smtp.stall()
    email_worker.connections.discard()  # no connection left open from an earlier test

    assert email_worker.send_emails([row.id for row in rows]) == {"retrying": 3}

    assert smtp.stalled_connections == 1  # the first email waited; the others did not
    db.session.expire_all()
    stored = [db.session.get(Delivery, row.id) for row in rows]
    assert [(row.status, row.attempts) for row in stored] == [
        ("retrying", 1), ("retrying", 0), ("retrying", 0)
    ]  # fmt: skip
    assert "timed out" in stored[0].last_error
    assert all(row.last_error.startswith("Not tried: ") for row in stored[1:])
    assert all("timed out" in row.last_error for row in stored[1:])


def test_an_email_the_server_turns_down_does_not_hold_back_the_rest(client, tenant, smtp):
    """Only a server that cannot be reached stops the batch: one email's own trouble (here
    a 4xx answer to its recipient) leaves the next email to be tried."""
    rows = email_rows(client, tenant, who=("eng", "admin"))
    smtp.tempfail()

    assert email_worker.send_emails([row.id for row in rows]) == {"retrying": 2}

    assert [stage for _, stage, _ in smtp.refusals] == ["RCPT", "RCPT"]


def test_not_configured_smtp_is_visible(client, tenant, app):
    app.config.update(SMTP_HOST="")
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert run(delivery) == "retrying"
    assert "SMTP_HOST" in delivery.last_error


def test_after_the_retry_window_a_transient_failure_fails_the_delivery(client, tenant, smtp, app):
    [delivery] = email_rows(client, tenant, who=("eng",))
    delivery.created_at = utcnow() - timedelta(hours=24, seconds=1)
    db.session.commit()
    smtp.tempfail()
    assert run(delivery) == "failed"
    assert delivery.status == "failed"
    assert (
        delivery.last_error.startswith("Gave up after 1 attempts: ")
        and "451" in delivery.last_error
    )
    assert drain_queue(app) == []


def test_no_message_is_handed_over_when_the_lease_cannot_cover_the_send(client, tenant, smtp, app):
    # 4 x SMTP_TIMEOUT (0.5 s) does not fit in a 1 s lease: a second sender could overlap.
    app.config.update(DELIVERY_LEASE_SECONDS=1.0, SMTP_TIMEOUT=0.5)
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert run(delivery) == "retrying"
    assert "lease" in delivery.last_error
    assert smtp.messages == []


def test_a_recipient_who_no_longer_exists_fails_visibly(client, tenant, smtp):
    [delivery] = email_rows(client, tenant, who=("eng",))
    delivery.recipient_id = None
    db.session.commit()
    assert run(delivery) == "failed"
    assert delivery.last_error == "The recipient no longer exists."


def test_a_socket_delivery_id_is_ignored(client, tenant, smtp):
    handoff = new_handoff(client, tenant)
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.handoff_id == handoff["id"]))
    socket_row = deliveries.claim_socket_delivery(event, timedelta(seconds=30))
    assert email_worker.send_email(socket_row.id) == "skipped"
    db.session.expire_all()
    assert (socket_row.status, socket_row.attempts) == ("pending", 1)  # only the dispatch's take


# --------------------------------------------------------------------------- sweeper


@both_databases
def test_sweeper_requeues_only_what_is_due(client, tenant, smtp, app):
    app.config.update(DELIVERY_SWEEP_GRACE_SECONDS=60)
    lost, fresh, done, held = email_rows(client, tenant, who=("eng", "eng2", "admin", "tech"))
    long_ago = utcnow() - timedelta(minutes=5)
    lost.created_at = done.created_at = held.created_at = long_ago
    done.status = "sent"
    held.locked_until = utcnow() + timedelta(minutes=1)  # a live worker is sending it
    db.session.commit()

    assert email_worker.sweep_deliveries() == 1
    assert [m["args"] for m in drain_queue(app)] == [f"[{lost.id}]"]
    db.session.expire_all()
    assert lost.next_attempt_at is not None and fresh.next_attempt_at is None
    # Just re-enqueued: the next sweep leaves it alone for another grace period.
    assert email_worker.sweep_deliveries() == 0


@both_databases
def test_sweeper_requeues_a_retry_whose_task_was_lost(client, tenant, smtp, app):
    app.config.update(DELIVERY_SWEEP_GRACE_SECONDS=60)
    [delivery] = email_rows(client, tenant, who=("eng",))
    smtp.down()
    assert run(delivery) == "retrying"
    drain_queue(app)  # the countdown task is lost
    assert email_worker.sweep_deliveries() == 0  # not due yet
    delivery.next_attempt_at = delivery.locked_until = utcnow() - timedelta(minutes=2)
    db.session.commit()
    assert email_worker.sweep_deliveries() == 1
    smtp.up()
    assert run(delivery) == "sent" and len(smtp.messages) == 1


def test_sweeper_leaves_socket_rows_to_the_fanout(client, tenant, app):
    app.config.update(DELIVERY_SWEEP_GRACE_SECONDS=0)
    handoff = new_handoff(client, tenant)
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.handoff_id == handoff["id"]))
    row = deliveries.claim_socket_delivery(event, timedelta(seconds=30))
    row.locked_until = utcnow() - timedelta(
        seconds=1
    )  # free to take again: only its channel keeps it out
    db.session.commit()
    assert email_worker.sweep_deliveries() == 0


# --------------------------------------------------------------------------- STARTTLS + AUTH


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {result.stderr[-300:]!r}")
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return _self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(certificate, monkeypatch):
    """An SMTP server that insists on STARTTLS, then AUTH, before it takes mail."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    # The client verifies the server against the system trust store; trust our test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with SmtpSink(tls=context, password="s3cret") as sink:
        yield sink


def _received(sink: SmtpSink) -> list[tuple[bool, list[str]]]:
    return [(m.authenticated, m.rcpt_tos) for m in sink.messages]


def test_starttls_and_login_when_configured(client, tenant, app, tls_server):
    app.config.update(
        SMTP_PORT=tls_server.port, SMTP_STARTTLS=True, SMTP_USERNAME="mailer",
        SMTP_PASSWORD="s3cret",
        SMTP_TIMEOUT=5.0,
    )  # fmt: skip
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert run(delivery) == "sent"
    logins = tls_server.logins
    assert logins and all(login == b"mailer" and ok for _, login, ok in logins)
    assert _received(tls_server) == [(True, ["eng@alpha-msp.example"])]


def test_a_wrong_password_is_a_permanent_failure(client, tenant, app, tls_server):
    app.config.update(
        SMTP_PORT=tls_server.port, SMTP_STARTTLS=True, SMTP_USERNAME="mailer",
        SMTP_PASSWORD="wrong",
        SMTP_TIMEOUT=5.0,
    )  # fmt: skip
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert run(delivery) == "failed", delivery.last_error
    assert "535" in delivery.last_error and _received(tls_server) == [], delivery.last_error


def test_without_starttls_the_server_refuses_and_nothing_is_sent(client, tenant, app, tls_server):
    app.config.update(SMTP_PORT=tls_server.port, SMTP_STARTTLS=False, SMTP_TIMEOUT=5.0)
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert run(delivery) == "failed"
    assert "530" in delivery.last_error and _received(tls_server) == []


def test_starttls_against_a_server_without_it_fails_visibly(client, tenant, smtp, app):
    app.config.update(SMTP_STARTTLS=True)
    [delivery] = email_rows(client, tenant, who=("eng",))
    assert run(delivery) == "failed"
    assert "STARTTLS" in delivery.last_error and smtp.messages == []


# --------------------------------------------------------------------------- backoff policy


def test_backoff_first_retry_within_30_seconds_then_doubling_capped_at_10_minutes():
    import random

    rng = random.Random(7)
    first = [deliveries.backoff_seconds(1, rng) for _ in range(500)]
    assert all(0 < d <= 30 for d in first)
    assert max(first) - min(first) > 3  # jittered, not a fixed delay
    for attempts in range(1, 40):
        ceiling = min(600, 15 * 2 ** (attempts - 1))  # doubling from 15 s, capped at 10 min
        delays = [deliveries.backoff_seconds(attempts, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempts
    assert 300 <= deliveries.backoff_seconds(10_000, rng) <= 600


def test_default_policy_meets_the_contract():
    policy = deliveries.DEFAULT_RETRY
    assert policy.window >= timedelta(hours=24)
    assert policy.first_retry_seconds <= 30 and policy.max_backoff_seconds == 600


def test_the_countdown_stays_below_the_visibility_timeout():
    from workers import settings as celery_config

    assert celery_config.MAX_COUNTDOWN_SECONDS < celery_config.VISIBILITY_TIMEOUT_SECONDS
    config = wired_app(app_config("sqlite://", EMAIL_MAX_BACKOFF_SECONDS=7200)).config
    settings = email_worker.EmailSettings.from_config(config)
    assert settings.retry.max_backoff_seconds <= celery_config.MAX_COUNTDOWN_SECONDS


def test_sweeper_runs_on_the_beat_schedule():
    from workers import settings as celery_config
    from workers.names import SWEEP_DELIVERIES

    entries = [e for e in celery_config.BEAT_SCHEDULE.values() if e["task"] == SWEEP_DELIVERIES]
    assert entries and entries[0]["schedule"] <= timedelta(seconds=30)


# --- what the senior reads: subject, body, thread -----------------------------------------
# The priority and the customer in every subject, the steps tried, times in the recipient's
# own zone, how long a reminder's escalation has waited, the footer for the delivery's
# reason, and one thread per escalation (In-Reply-To and References of the first email).
# The clock is pinned with time-machine at a winter and a summer date.

WINTER = datetime(2026, 1, 20, 15, 0, 0, tzinfo=UTC)  # 09:00 CST in Chicago
SUMMER = datetime(2026, 7, 14, 14, 0, 0, tzinfo=UTC)  # 09:00 CDT in Chicago


def escalate_p1(client, tenant) -> dict:
    session = client.post(
        "/api/v1/sessions",
        json={
            "title": "Exchange mailbox won't sync",
            "customer": "Initech",
            "priority": "p1",
            "snapshot": {"steps_tried": ["Restarted Outlook", "Rebuilt the OST"]},
        },
        headers=tenant.auth("tech"),
    ).get_json()
    response = client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": "Sync stuck since the migration"},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def emails_for(handoff_id: int, event: str, recipients: dict[int, str]):
    outbox_event = db.session.scalar(
        select(OutboxEvent).where(OutboxEvent.handoff_id == handoff_id, OutboxEvent.event == event)
    )
    step = "reminder-1" if event == "handoff.reminder" else None
    step = "admins" if event == "handoff.unclaimed" else step
    return deliveries.email_deliveries(outbox_event, Chosen(recipients, {}), step)


@pytest.mark.parametrize(
    "t0, local", [(WINTER, "09:00 CST"), (SUMMER, "09:00 CDT")], ids=["winter", "summer"]
)
def test_a_p1_thread_first_email_then_reminder_then_admin_step(client, tenant, smtp, t0, local):
    eng = tenant.users["eng"]
    db.session.get(User, eng).timezone = "America/Chicago"  # the account is in UTC
    db.session.commit()
    with time_machine.travel(t0, tick=False) as clock:
        handoff = escalate_p1(client, tenant)
        [first] = emails_for(handoff["id"], "handoff.created", {eng: BUSINESS_HOURS})
        assert run(first) == "sent"
        clock.move_to(t0 + timedelta(minutes=2, seconds=5))
        assert run_due_steps().reminders == 1  # p1: reminded after 2 minutes
        [reminder] = emails_for(handoff["id"], "handoff.reminder", {eng: BUSINESS_HOURS})
        assert run(reminder) == "sent"
        clock.move_to(t0 + timedelta(minutes=5, seconds=1))
        assert run_due_steps().admin_steps == 1  # p1: the admins after 5
        [admins] = emails_for(handoff["id"], "handoff.unclaimed", {eng: ADMIN_STEP})
        assert run(admins) == "sent"

    mails = smtp.messages
    assert [m.subject for m in mails] == [
        "[P1 · Initech] Exchange mailbox won't sync",
        "[P1 · Initech] Reminder, still unclaimed after 2 min: Exchange mailbox won't sync",
        "[P1 · Initech] Nobody has claimed after 5 min: Exchange mailbox won't sync",
    ]
    root = f"<escalation-{handoff['id']}.to-{eng}@desk.example.com>"
    assert mails[0]["Message-ID"] == root and mails[0]["In-Reply-To"] is None
    for later in mails[1:]:
        assert later["In-Reply-To"] == root and later["References"] == root
        assert later["Message-ID"] != root
    body = mails[0].text
    assert "Restarted Outlook" in body and "Rebuilt the OST" in body
    assert f"Escalated at: {t0:%Y-%m-%d} {local} (America/Chicago)" in body
    assert "during business hours" in body  # the footer for the delivery's reason
    assert "has waited 2 min" in mails[1].text and "Waiting for: 2 min, unclaimed" in mails[1].text
    assert "nobody has claimed it in time" in mails[2].text
    assert "because you were not connected when the escalation was created" not in mails[2].text

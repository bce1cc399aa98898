"""Self-tests for the real-service helpers; they need no application code."""

from __future__ import annotations

import signal
import smtplib
import socket
import sys
import time
from email.message import EmailMessage

import pytest
import redis

from tests.integration.services import (
    ProcessGroup,
    ProcessStartError,
    RedisServer,
    SmtpSink,
    free_port,
    http_ready,
    log_contains,
    wait_for,
)

pytestmark = pytest.mark.integration


def _mail(to: str = "senior@example.test", subject: str = "Escalated: printer") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "escalations@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Reason: printer on fire\nhttp://127.0.0.1:5000/pilot/1\n")
    return msg


def _send(sink: SmtpSink, msg: EmailMessage, timeout: float = 5.0) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=timeout) as smtp:
        smtp.send_message(msg)


# --------------------------------------------------------------------------- helpers


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_returns_value_and_times_out() -> None:
    assert wait_for(lambda: 42, timeout=1) == 42
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="never"):
        wait_for(lambda: False, timeout=0.3, message="never")
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------- Redis


def test_redis_url_is_empty_and_usable(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    assert client.ping()
    assert client.dbsize() == 0
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()


def test_redis_url_is_flushed_between_tests(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    assert client.get("k") is None
    client.close()


def test_redis_stop_and_start_on_same_port(tmp_path) -> None:
    with RedisServer(data_dir=tmp_path) as server:
        port = server.port
        client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        assert client.ping()
        server.stop()
        assert not server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        server.start()
        assert server.port == port
        assert client.ping()
        # persistence is off: nothing survives a restart
        client.set("k", "v")
        server.restart()
        assert client.get("k") is None
        client.close()
    assert not server.running


def test_session_redis_can_be_stopped_and_comes_back(redis_server, redis_url) -> None:
    redis_server.stop()
    assert not redis_server.ping()
    # the next test's ``redis_url`` restarts it; prove that path here too
    redis_server.start()
    assert redis.Redis.from_url(redis_url, socket_timeout=2).ping()


# --------------------------------------------------------------------------- SMTP


def test_smtp_ok_collects_parsed_messages(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, _mail())
    _send(smtp_sink, _mail(to="other@example.test", subject="second"))
    first, second = smtp_sink.wait_for_messages(2, timeout=5)
    assert first.subject == "Escalated: printer"
    assert first.rcpt_tos == ["senior@example.test"]
    assert first.mail_from == "escalations@example.test"
    assert "printer on fire" in first.text
    assert first["To"] == "senior@example.test"
    assert second.subject == "second"
    assert [m.subject for m in smtp_sink.messages_to("OTHER@example.test")] == ["second"]
    smtp_sink.clear()
    assert smtp_sink.messages == []


def test_smtp_reject_is_permanent_550(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        _send(smtp_sink, _mail())
    code, _ = info.value.recipients["senior@example.test"]
    assert code == 550
    assert smtp_sink.messages == []
    assert smtp_sink.refusals[0][:2] == ("reject", "RCPT")


def test_smtp_tempfail_is_transient_451(smtp_sink: SmtpSink) -> None:
    smtp_sink.tempfail()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        _send(smtp_sink, _mail())
    code, _ = info.value.recipients["senior@example.test"]
    assert code == 451
    smtp_sink.ok()
    _send(smtp_sink, _mail())
    assert len(smtp_sink.wait_for_messages(1)) == 1


def test_smtp_down_refuses_then_up_on_same_port(smtp_sink: SmtpSink) -> None:
    port = smtp_sink.port
    smtp_sink.down()
    with pytest.raises(ConnectionRefusedError):
        _send(smtp_sink, _mail())
    smtp_sink.up()
    assert smtp_sink.port == port
    _send(smtp_sink, _mail())
    assert smtp_sink.wait_for_messages(1)[0].rcpt_tos == ["senior@example.test"]


def test_smtp_stall_accepts_but_never_answers(smtp_sink: SmtpSink) -> None:
    smtp_sink.stall()
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, smtplib.SMTPServerDisconnected)):
        _send(smtp_sink, _mail(), timeout=0.5)
    assert time.monotonic() - started < 3
    assert smtp_sink.stalled_connections == 1
    smtp_sink.up()
    _send(smtp_sink, _mail())
    assert len(smtp_sink.wait_for_messages(1)) == 1


def test_smtp_unknown_mode_is_an_error(smtp_sink: SmtpSink) -> None:
    with pytest.raises(ValueError):
        smtp_sink.set_mode("flaky")


# --------------------------------------------------------------------------- processes

SERVER = """
import http.server, os, sys
print("booting", flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
print("ready on", os.environ["PORT"], flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def test_process_group_ready_kill_restart(tmp_path) -> None:
    port = free_port()
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
    with ProcessGroup(tmp_path) as group:
        web = group.start(
            [sys.executable, "-c", SERVER],
            env,
            ready_check=http_ready(f"http://127.0.0.1:{port}/healthz"),
            name="web",
            timeout=20,
        )
        assert web.alive
        assert "ready on" in web.log_text()
        assert web.kill(signal.SIGKILL) == -signal.SIGKILL
        assert not web.alive
        web.start(timeout=20)
        assert web.starts == 2
        assert log_contains(r"ready on \d+")(web)
        other = group.start(
            [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
            env,
            ready_check=log_contains("^up$|up\n"),
            name="web",
            timeout=20,
        )
        assert other.name == "web-2"
    assert not web.alive and not other.alive


def test_process_that_dies_reports_its_log(tmp_path) -> None:
    with ProcessGroup(tmp_path) as group, pytest.raises(ProcessStartError, match="boom"):
        group.start(
            [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
            {"PATH": "/usr/bin:/bin"},
            ready_check=log_contains("never"),
            timeout=20,
        )


def test_process_not_ready_in_time_is_killed(tmp_path) -> None:
    with ProcessGroup(tmp_path) as group:
        with pytest.raises(ProcessStartError, match="not ready after"):
            group.start(
                [sys.executable, "-c", "import time; time.sleep(600)"],
                {"PATH": "/usr/bin:/bin"},
                ready_check=log_contains("never"),
                timeout=1,
            )
        assert not group.processes[0].alive


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_database_is_fresh_and_dropped(postgres_url: str, postgres_database: str) -> None:
    import sqlalchemy as sa

    assert postgres_database != postgres_url
    engine = sa.create_engine(postgres_database)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() != "escalation_test"
        tables = conn.execute(
            sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
        ).scalar()
        assert tables == 0
    engine.dispose()


# --------------------------------------------------------------------------- Chromium


@pytest.mark.e2e
def test_system_chromium_renders_a_local_page(tmp_path) -> None:
    from tests.integration.services import CHROMIUM_ARGS, chromium_executable

    executable = chromium_executable()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
    with ProcessGroup(tmp_path) as group, sync_api.sync_playwright() as pw:
        group.start(
            [sys.executable, "-c", SERVER],
            env,
            ready_check=http_ready(f"http://127.0.0.1:{port}/healthz"),
            timeout=20,
        )
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            response = page.goto(f"http://127.0.0.1:{port}/healthz", timeout=15_000)
            assert response is not None and response.status == 200
            assert page.inner_text("body") == "ok"
        finally:
            browser.close()

"""The local stack's one SMTP sink: the fault modes added beside ok/down/reject/tempfail/
stall (drop, slow), saving to a directory as `make run` uses it, and the sink in a process
of its own, as the benchmarks and `python -m devstack.smtp_sink` run it."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest

from devstack.net import REPO_ROOT, free_port, python_env, wait_for, wait_for_port
from devstack.smtp_sink import SinkProcess, SmtpSink


def _mail(to: str = "senior@example.test", subject: str = "Escalated: printer") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "escalations@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg["X-Escalation-Handoff-Id"] = "17"
    msg.set_content("Reason: printer on fire\n")
    return msg


def _send(port: int, msg: EmailMessage, timeout: float = 5.0) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as smtp:
        smtp.send_message(msg)


@pytest.fixture
def sink():
    with SmtpSink() as running:
        yield running


def test_drop_takes_the_message_and_cuts_the_connection_before_the_reply(sink):
    sink.drop()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        _send(sink.port, _mail())
    # The client saw no reply, yet the message was delivered: a retry sends it twice.
    assert [m.subject for m in sink.messages] == ["Escalated: printer"]
    sink.ok()
    _send(sink.port, _mail(subject="after"))
    assert [m.subject for m in sink.wait_for_messages(2)] == ["Escalated: printer", "after"]


def test_slow_holds_each_message_that_long_then_accepts_it(sink):
    sink.slow(0.4)
    started = time.monotonic()
    _send(sink.port, _mail())
    assert time.monotonic() - started >= 0.4
    assert len(sink.messages) == 1
    sink.slow(0)
    assert sink.delay_seconds == 0


def test_save_dir_keeps_each_message_as_an_eml_file_and_announces_it(tmp_path):
    lines: list[str] = []
    with SmtpSink(save_dir=tmp_path / "mail", announce=lines.append) as sink:
        _send(sink.port, _mail(to="erin@demo.example", subject="Escalated: VPN"))
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1 and files[0].name.endswith("-0001.eml")
    assert b"Subject: Escalated: VPN" in files[0].read_bytes()
    assert lines == [f"mail to erin@demo.example: 'Escalated: VPN' -> {files[0]}"]


def test_the_sink_in_a_process_of_its_own_switches_modes_and_counts():
    with SinkProcess() as sink:
        port = int(sink.env()["SMTP_PORT"])
        _send(port, _mail())
        sink.set_mode("down")
        with pytest.raises(ConnectionRefusedError):
            _send(port, _mail())
        sink.set_mode("ok")
        _send(port, _mail(to="other@example.test"))
        stats = sink.stats()
    assert [(h, rcpt) for h, rcpt, _ in stats["messages"]] == [
        ("17", "senior@example.test"),
        ("17", "other@example.test"),
    ]
    assert stats["greetings"] == 2


def test_python_m_devstack_smtp_sink_saves_mail_and_stops_on_sigterm(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.smtp_sink", "--port", str(port), "--dir", str(tmp_path)],
        cwd=REPO_ROOT,
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, timeout=20)
        _send(port, _mail(subject="by hand"))
        saved = wait_for(lambda: list(tmp_path.glob("*.eml")), timeout=5)
        assert b"Subject: by hand" in saved[0].read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert f"mail sink listening on 127.0.0.1:{port}" in out
    assert "mail to senior@example.test: 'by hand'" in out
    assert out.rstrip().endswith("mail sink stopped")

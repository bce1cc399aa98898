"""The `make run` launcher's pieces that run in milliseconds: the closing box, the demo
logins it shows, which Procfile entries it runs, and the quiet routine-task logs (its
supervisor is devstack's: tests/devstack/test_supervisor.py)."""

from __future__ import annotations

import importlib.util
import logging
import sys

import pytest

from devstack.net import REPO_ROOT
from workers.routine_logs import RoutineTaskFilter

spec = importlib.util.spec_from_file_location("run_local", REPO_ROOT / "scripts" / "run_local.py")
run_local = importlib.util.module_from_spec(spec)
sys.modules["run_local"] = run_local  # dataclasses look their module up there
spec.loader.exec_module(run_local)

SEED_OUTPUT = """Demo history: 21 escalations over 4 months
Demo account 'Demo MSP' — password for every login: demo-password
  admin      Olivia Owner       owner@demo.example     token abc
  technician Terry Technician   tech@demo.example      token def
  engineer   Erin Engineer      erin@demo.example      token ghi
"""


def test_the_box_frames_the_url_and_the_logins_last():
    logins = run_local.demo_logins(SEED_OUTPUT)
    assert logins == [
        ("admin", "owner@demo.example"),
        ("technician", "tech@demo.example"),
        ("engineer", "erin@demo.example"),
    ]
    lines = run_local.ready_lines("http://127.0.0.1:5000", logins, "Emails are saved.")
    framed = run_local.box(lines).splitlines()
    assert framed[0] == framed[-1] and set(framed[0]) == {"+", "-"}
    assert len({len(line) for line in framed}) == 1  # every line as wide as the frame
    assert "http://127.0.0.1:5000" in framed[1]
    body = "\n".join(framed)
    assert "tech@demo.example" in body and "demo-password" in body
    assert "Ctrl-C stops everything." in framed[-2]


def test_every_procfile_entry_but_release_runs_new_ones_included():
    procfile = {"release": "x", "web": "w", "worker": "c", "beat": "b", "mailer": "m"}
    assert run_local.run_processes(procfile) == ["web", "worker", "beat", "mailer"]
    with pytest.raises(SystemExit, match="beat"):
        run_local.run_processes({"release": "x", "web": "w", "worker": "c"})


def test_the_web_process_listens_on_localhost_unless_host_says_otherwise(monkeypatch):
    monkeypatch.delenv("HOST", raising=False)
    assert run_local.local_env()["HOST"] == "127.0.0.1"
    monkeypatch.setenv("HOST", "0.0.0.0")
    assert run_local.local_env()["HOST"] == "0.0.0.0"


def record(message: str, level: int = logging.INFO, name: str = "celery.app.trace"):
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_routine_ticks_are_quiet_at_info_but_their_problems_are_not():
    quiet = RoutineTaskFilter()
    relay = "Task workers.outbox_relay.relay_outbox[1f] succeeded in 0.01s: 0"
    assert not quiet.filter(record(relay))
    assert not quiet.filter(record("Scheduler: Sending due task sweep-deliveries (x)"))
    assert not quiet.filter(record("Rolled up 2 account-months", name="models.rollup"))
    assert quiet.filter(record(relay, logging.WARNING))
    assert quiet.filter(record("Task workers.email.send_email[2a] succeeded in 0.04s"))

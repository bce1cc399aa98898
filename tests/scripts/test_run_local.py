"""The `make run` launcher's pieces that run in milliseconds: the closing box, the demo
logins it shows, which Procfile entries it runs, restarting a process that exits (real
short-lived subprocesses, a controlled clock), and the quiet routine-task logs."""

from __future__ import annotations

import importlib.util
import logging
import sys
import time

import pytest

from tests.integration.services import REPO_ROOT
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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wait_exited(item, timeout: float = 10) -> None:
    item.proc.wait(timeout=timeout)
    time.sleep(0.05)  # the output pump reads the last lines


def test_a_process_that_exits_is_started_again_after_a_growing_delay():
    clock, lines = Clock(), []
    supervisor = run_local.Supervisor(write=lines.append, clock=clock, first_delay=1, max_delay=3)
    command = f"{sys.executable} -c \"print('up'); raise SystemExit(3)\""
    supervisor.add("flaky", command, {"PATH": "/usr/bin:/bin"})
    supervisor.start_all()
    item = supervisor.processes[0]
    delays = []
    for _ in range(4):
        wait_exited(item)
        supervisor.check()  # notices the exit, schedules the restart
        delays.append(item.restart_at - clock.now)
        first = item.proc
        clock.now = item.restart_at - 0.01
        supervisor.check()
        assert item.proc is first  # not before its time
        clock.now = item.restart_at
        supervisor.check()
        assert item.proc is not first and item.restart_at is None
    assert delays == [1, 2, 3, 3]  # doubling, capped
    assert item.restarts == 4
    # A run that lasted long enough was healthy: the next exit restarts it at once.
    wait_exited(item)
    assert lines.count("flaky | up") == 5  # the output of every run, prefixed
    clock.now += run_local.STABLE_AFTER_SECONDS
    supervisor.check()
    assert item.restart_at == clock.now and item.failures == 1
    supervisor.stop_all()


def test_stopping_ends_every_process_and_restarts_nothing():
    supervisor = run_local.Supervisor(write=lambda line: None, first_delay=0)
    supervisor.add("sleeper", f'{sys.executable} -c "import time; time.sleep(60)"', {})
    supervisor.start_all()
    item = supervisor.processes[0]
    assert supervisor.all_running()
    supervisor.stop_all(timeout=5)
    assert item.proc.poll() is not None
    supervisor.check()
    assert item.restart_at is None and item.restarts == 0


def test_a_celery_worker_is_up_once_it_says_ready():
    item = run_local.Supervised("worker", "celery -A celery_config worker --loglevel=INFO", {})
    assert not item.ready
    item.saw("[2026-12-01 23:01:35,005: INFO/MainProcess] celery@vm ready.")
    assert item.ready
    assert run_local.Supervised("web", "python wsgi.py", {}).ready


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

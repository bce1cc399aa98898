"""devstack's supervisor, which `make run` runs the Procfile's processes under: restarting a
process that exits (real short-lived subprocesses, a controlled clock), stopping, and when a
Celery process counts as up."""

from __future__ import annotations

import sys
import time

from devstack.supervisor import STABLE_AFTER_SECONDS, Supervised, Supervisor


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
    supervisor = Supervisor(write=lines.append, clock=clock, first_delay=1, max_delay=3)
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
    clock.now += STABLE_AFTER_SECONDS
    supervisor.check()
    assert item.restart_at == clock.now and item.failures == 1
    supervisor.stop_all()


def test_stopping_ends_every_process_and_restarts_nothing():
    supervisor = Supervisor(write=lambda line: None, first_delay=0)
    supervisor.add("sleeper", f'{sys.executable} -c "import time; time.sleep(60)"', {})
    supervisor.start_all()
    item = supervisor.processes[0]
    assert supervisor.all_running()
    supervisor.stop_all(timeout=5)
    assert item.proc.poll() is not None
    supervisor.check()
    assert item.restart_at is None and item.restarts == 0


def test_a_celery_worker_is_up_once_it_says_ready():
    item = Supervised("worker", "celery -A celery_config worker --loglevel=INFO", {})
    assert not item.ready
    item.saw("[2026-12-01 23:01:35,005: INFO/MainProcess] celery@vm ready.")
    assert item.ready
    assert Supervised("web", "python wsgi.py", {}).ready

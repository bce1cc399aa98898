"""The throwaway PostgreSQL cluster: its own port, its own directory, its own marker."""

import os
import socket
import subprocess
import sys

import pytest

from devstack.postgres import Postgres, find_bindir

BINDIR = find_bindir()
pytestmark = pytest.mark.skipif(BINDIR is None, reason="no PostgreSQL server binaries")


@pytest.fixture
def two_clusters():
    a, b = Postgres(BINDIR).start(), Postgres(BINDIR)
    b.start()
    yield a, b
    a.stop()
    b.stop()


def test_two_runs_never_meet(two_clusters):
    a, b = two_clusters
    assert a.port != b.port
    assert a.data_dir != b.data_dir
    assert a.database != b.database
    assert a.is_own() and b.is_own()


def test_a_server_that_is_not_ours_is_refused(two_clusters):
    a, b = two_clusters
    impostor = Postgres(BINDIR, port=b.port, data_dir=a.data_dir, run_id=a.run_id)
    assert not impostor.is_own()


def test_a_stopped_server_is_not_alive():
    pg = Postgres(BINDIR).start()
    assert pg.is_own()
    pg.stop()
    assert not pg.is_own()
    assert not os.path.exists(pg.data_dir)


def test_a_command_runs_against_its_own_cluster_which_is_gone_afterwards(tmp_path):
    probe = tmp_path / "probe.txt"
    script = (
        "import os, sqlalchemy as sa; url = os.environ['TEST_POSTGRES_URL'];"
        "e = sa.create_engine(url); c = e.connect();"
        "n = c.execute(sa.text('SELECT 41 + 1')).scalar();"
        f"open({str(probe)!r}, 'w').write(url + ' ' + str(n));"
        "c.close(); e.dispose(); raise SystemExit(7)"
    )
    rc = subprocess.call(
        [sys.executable, "-m", "devstack.with_postgres", sys.executable, "-c", script]
    )
    assert rc == 7
    url, answer = probe.read_text().split()
    assert answer == "42"
    port = int(url.split(":")[-1].split("/")[0])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_halted_server_comes_back_on_its_port_with_its_data_and_marker():
    pg = Postgres(BINDIR).start()
    try:
        pg._psql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)", pg.database)
        port = pg.port
        pg.halt()
        assert not pg.is_own()  # connections refused while it is down
        assert os.path.exists(pg.data_dir)
        pg.start()
        assert pg.port == port and pg.is_own()
        assert pg._psql("SELECT n FROM kept", pg.database) == "7"
    finally:
        pg.stop()
    assert not os.path.exists(pg.data_dir)


def test_the_private_server_stops_and_starts_again_and_is_destroyed_at_the_end():
    from devstack.postgres import PrivatePostgres

    private = PrivatePostgres()
    url = private.start()
    try:
        assert private.plain_url.startswith("postgresql://postgres@127.0.0.1:")
        private.stop()
        assert not private.server.is_own()
        assert private.start() == url and private.server.is_own()
    finally:
        private.destroy()
    assert not os.path.exists(private.server.data_dir)

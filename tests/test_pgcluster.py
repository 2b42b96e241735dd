"""Tests for the throwaway PostgreSQL cluster and for the shared ``database_url`` fixture."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from penny.devtools.pgcluster import HOST, PgCluster, PgClusterError, find_pg_bindir

# Tests marked ``postgresql`` need PostgreSQL server binaries; ``-m "not postgresql"`` skips them
# (and the PostgreSQL variants of ``database_url``).


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """One cluster shared by the tests of this module that don't stop or break it."""
    with PgCluster.start() as started:
        yield started


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """An empty directory under /tmp that the ``postgres`` OS user can reach.

    pytest's ``tmp_path`` will not do when running as root: /tmp/pytest-of-root is mode 0700.
    """
    path = Path(tempfile.mkdtemp(prefix="penny-pgcluster-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_find_pg_bindir_finds_server_binaries() -> None:
    bindir = find_pg_bindir()
    assert bindir is not None
    assert (bindir / "initdb").is_file()
    assert (bindir / "pg_ctl").is_file()


@pytest.mark.postgresql
def test_cluster_accepts_connections_with_the_requested_settings(cluster: PgCluster) -> None:
    assert cluster.is_running
    assert cluster.host == "127.0.0.1"
    assert cluster.url() == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/postgres"
    assert cluster.url("other") == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/other"
    with psycopg.connect(cluster.dsn()) as conn:
        row = conn.execute(
            "SELECT current_user, current_setting('listen_addresses'),"
            " current_setting('fsync'), current_setting('synchronous_commit'),"
            " current_setting('max_connections'), current_setting('shared_buffers'),"
            " current_setting('server_encoding')"
        ).fetchone()
    assert row == ("postgres", "127.0.0.1", "on", "on", "300", "256MB", "UTF8")
    # The private Unix socket works too.
    with psycopg.connect(
        host=str(cluster.directory), port=cluster.port, user="postgres", dbname="postgres"
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.postgresql
def test_create_database_returns_a_working_url_and_drop_removes_it(cluster: PgCluster) -> None:
    url = cluster.create_database("penny_pgcluster_create")
    assert url == cluster.url("penny_pgcluster_create")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO t (id) VALUES (7)"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM t")).scalar_one() == 7
        # The engine's pool still holds an open session: dropping must cope (WITH (FORCE)).
        cluster.drop_database("penny_pgcluster_create")
    finally:
        engine.dispose()
    with psycopg.connect(cluster.dsn()) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 'penny_pgcluster_create'"
        ).fetchone()
    assert found == (0,)


@pytest.mark.postgresql
def test_stop_rejects_an_unknown_mode(cluster: PgCluster) -> None:
    with pytest.raises(ValueError, match="stop mode"):
        cluster.stop("gently")
    assert cluster.is_running


@pytest.mark.postgresql
def test_restart_immediate_keeps_committed_data() -> None:
    with PgCluster.start() as crashing:
        port = crashing.port
        with psycopg.connect(crashing.dsn()) as conn:
            conn.execute("CREATE TABLE survivors (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
            conn.execute("INSERT INTO survivors VALUES (1, 'committed')")
            conn.commit()
        in_flight = psycopg.connect(crashing.dsn())
        try:
            in_flight.execute("INSERT INTO survivors VALUES (2, 'never committed')")
            crashing.restart("immediate")
        finally:
            in_flight.close()
        assert crashing.is_running
        assert crashing.port == port
        with psycopg.connect(crashing.dsn()) as conn:
            rows = conn.execute("SELECT id, note FROM survivors ORDER BY id").fetchall()
        assert rows == [(1, "committed")]


@pytest.mark.postgresql
def test_destroy_stops_the_server_and_removes_the_directory(reachable_dir: Path) -> None:
    doomed = PgCluster.start(reachable_dir)
    directory = doomed.directory
    assert directory.parent == reachable_dir
    assert (doomed.data_dir / "PG_VERSION").is_file()
    doomed.destroy()
    assert not doomed.is_running
    assert not directory.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(doomed.dsn(), connect_timeout=2).close()
    doomed.destroy()  # idempotent


@pytest.mark.postgresql
def test_start_failure_raises_with_the_server_log_and_leaves_nothing(reachable_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        taken_port: int = squatter.getsockname()[1]
        with pytest.raises(PgClusterError, match="Address already in use"):
            PgCluster.start(reachable_dir, port=taken_port)
    assert list(reachable_dir.iterdir()) == []


@pytest.mark.postgresql
def test_module_entry_point_serves_until_sigterm(reachable_dir: Path) -> None:
    command = [sys.executable, "-m", "penny.devtools.pgcluster", "--base-dir", str(reachable_dir)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        try:
            assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
            engine = sa.create_engine(url)
            try:
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            finally:
                engine.dispose()
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert list(reachable_dir.iterdir()) == []


@pytest.mark.parametrize("attempt", [1, 2])
def test_database_url_is_a_fresh_private_database(database_url: str, attempt: int) -> None:
    # Run twice per store: the second run would find the first's table if databases were shared.
    assert sa.make_url(database_url).drivername in {"sqlite", "postgresql+psycopg"}
    engine = sa.create_engine(database_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY, attempt INTEGER)"))
            conn.execute(sa.text("INSERT INTO probe (id, attempt) VALUES (1, :a)"), {"a": attempt})
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT attempt FROM probe")).scalar_one() == attempt
    finally:
        engine.dispose()

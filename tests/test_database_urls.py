"""How Penny reads database URLs (libpq's multi-host form for a high-availability cluster, the
connection settings it adds for PostgreSQL) and which driver errors mean that the connection to
PostgreSQL is lost (a failover: the batch is answered ``storage_unavailable``). Issue #18."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError, OperationalError

from penny.storage.database import Database, multi_host_url, pg_connect_args


def _connect_args(url: str) -> dict[str, object]:
    engine = create_engine(url)
    try:
        return dict(engine.dialect.create_connect_args(engine.url)[1])
    finally:
        engine.dispose()


def test_a_libpq_multi_host_url_names_every_host_to_psycopg() -> None:
    url = multi_host_url(
        "postgresql://penny:s%40cret@db-a:5432,db-b:5433,db-c/penny?target_session_attrs=read-write"
    )
    args = _connect_args(url)
    assert args["host"] == "db-a,db-b,db-c"
    assert args["port"] == "5432,5433,"
    assert (args["user"], args["password"], args["dbname"]) == ("penny", "s@cret", "penny")
    assert args["target_session_attrs"] == "read-write"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://penny@db-a:5432/penny",
        "sqlite:///penny.db",
        "postgresql+psycopg://penny@/penny?host=db-a:1&host=db-b:2",
    ],
)
def test_other_urls_are_left_alone(url: str) -> None:
    assert multi_host_url(url) == url


def test_postgresql_connections_get_a_connect_timeout_and_keepalives_unless_the_url_sets_them() -> (
    None
):
    added = pg_connect_args("postgresql+psycopg://penny@db-a/penny?connect_timeout=2")
    assert "connect_timeout" not in added  # the URL's own 2 s stands
    assert added["keepalives_idle"] == "5"
    assert added["options"] == "-c synchronous_commit=on"
    assert pg_connect_args("postgresql+psycopg://penny@db-a/penny")["connect_timeout"] == "5"


def _database(url: str) -> Database:
    engine = create_engine(url)  # never connects here
    return Database(url, engine.dialect.name, engine, engine)


@pytest.mark.parametrize(
    ("orig", "lost"),
    [
        (psycopg.OperationalError("connection failed: Connection refused"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),  # 57P01
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), True),  # a standby
        (psycopg.errors.TooManyConnections("too many clients"), True),
        (psycopg.errors.SerializationFailure("could not serialize"), False),  # re-run instead
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (Exception("database is locked"), False),  # not the driver's: not a lost connection
    ],
)
def test_which_postgresql_errors_mean_the_connection_is_lost(orig: Exception, lost: bool) -> None:
    database = _database("postgresql+psycopg://penny@db-a/penny")
    try:
        assert database.lost_connection(OperationalError("COMMIT", {}, orig)) is lost
    finally:
        database.dispose()


def test_a_disconnect_is_lost_and_sqlite_never_is() -> None:
    database = _database("postgresql+psycopg://penny@db-a/penny")
    invalidated = DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert database.lost_connection(invalidated)
    database.dispose()
    sqlite = _database("sqlite://")
    assert not sqlite.lost_connection(invalidated)
    sqlite.dispose()

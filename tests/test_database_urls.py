"""How Penny reads database URLs: libpq's multi-host form for a high-availability cluster, and
the connection settings it adds for PostgreSQL (issue #18)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from penny.storage.database import multi_host_url, pg_connect_args


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

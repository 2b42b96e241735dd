"""The payments batch's hot statements, sent straight to the driver's cursor (#8).

A SQLAlchemy Core ``select(...).where(col.in_(ids))`` costs ~90 µs before SQLite sees it
(rendering the expanding IN list, wrapping the result), ~20× the statement itself; a batch of
payments runs about ten such reads and writes, which made a one-payment batch cost ~2 ms. The
functions here run plain SQL text on the DBAPI cursor of the *same* connection, inside the
transaction SQLAlchemy began (so ``BEGIN IMMEDIATE`` and the commit are unchanged), with one
constant text per statement so that the driver's own statement cache keeps it prepared:

* a list of values is one parameter: ``IN (SELECT value FROM json_each(?))`` on SQLite,
  ``= ANY(%s)`` on PostgreSQL (:func:`in_clause`, :func:`bound_list`; the ledger's own SQL
  uses them too);
* statements are written with ``?`` placeholders (:func:`for_driver` converts them for
  psycopg);
* driver errors are raised as SQLAlchemy's (:class:`sqlalchemy.exc.DBAPIError` subclasses),
  so the ledger's retry of conflicts and busy stores treats them as before.

Everything else (migrations, queries, the CLI) keeps using SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

R = TypeVar("R")


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def in_clause(postgresql: bool, column: str) -> str:
    """``column`` is one of the values bound by :func:`bound_list` (one ``?`` parameter)."""
    if postgresql:
        return f"{column} = ANY(?)"
    return f"{column} IN (SELECT value FROM json_each(?))"


def bound_list(postgresql: bool, values: Iterable[Any]) -> Any:
    """Several values as the one parameter of :func:`in_clause`."""
    return list(values) if postgresql else json.dumps(list(values))


@lru_cache(maxsize=1024)
def _percent_style(sql: str) -> str:
    return sql.replace("?", "%s")


def for_driver(postgresql: bool, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, as the store's driver wants it (psycopg:
    ``%s``; the texts here hold no literal ``%``)."""
    return _percent_style(sql) if postgresql else sql


def fetch_all(conn: Connection, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
    """The rows of ``sql`` (``?`` placeholders) as tuples, in the current transaction."""
    with _cursor(conn, sql, params) as (cursor, statement):
        cursor.execute(statement, params)
        rows: list[Sequence[Any]] = cursor.fetchall()
        return rows


def records_by_id(
    conn: Connection,
    table: str,
    names: Sequence[str],
    ids: Iterable[str],
    record: Callable[[dict[str, Any]], R],
    *,
    lock: bool = False,
) -> dict[str, R]:
    """The rows of ``table`` whose ``id`` is one of ``ids`` (unknown ids are simply absent), each
    read by ``record`` from ``names`` → value, by id; ``lock`` takes their row locks on
    PostgreSQL (``FOR UPDATE``, in id order)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    postgresql = is_postgresql(conn)
    sql = _select_by_id(table, tuple(names), postgresql, postgresql and lock)
    rows = fetch_all(conn, sql, (bound_list(postgresql, wanted),))
    found = (dict(zip(names, row, strict=True)) for row in rows)
    return {row["id"]: record(row) for row in found}


@lru_cache(maxsize=64)
def _select_by_id(table: str, names: tuple[str, ...], postgresql: bool, lock: bool) -> str:
    sql = f"SELECT {', '.join(names)} FROM {table} WHERE {in_clause(postgresql, 'id')} ORDER BY id"
    return sql + " FOR UPDATE" if lock else sql


def execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` (``?`` placeholders) once per row, in the current transaction."""
    if rows:
        with _cursor(conn, sql, rows[0]) as (cursor, statement):
            cursor.executemany(statement, rows)


@contextmanager
def _cursor(conn: Connection, sql: str, params: Any) -> Iterator[tuple[Any, str]]:
    """The driver's cursor of ``conn`` and ``sql`` as the driver wants it; a driver error in
    the block is raised as SQLAlchemy's."""
    statement = for_driver(is_postgresql(conn), sql)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor, statement
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, statement, params, exc) from exc
    finally:
        cursor.close()


def _wrapped(conn: Connection, statement: str, params: Any, exc: Exception) -> DBAPIError:
    wrapped = DBAPIError.instance(
        statement,
        params,
        exc,
        conn.dialect.loaded_dbapi.Error,
        dialect=conn.dialect,
    )
    assert isinstance(wrapped, DBAPIError)
    return wrapped

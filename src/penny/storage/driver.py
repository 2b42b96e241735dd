"""The payments batch's hot statements, sent straight to the driver's cursor (#8).

A SQLAlchemy Core ``select(...).where(col.in_(ids))`` costs ~90 µs before SQLite sees it
(rendering the expanding IN list, wrapping the result), ~20× the statement itself; a batch of
payments runs about ten such reads and writes, which made a one-payment batch cost ~2 ms. The
functions here run plain SQL text on the DBAPI cursor of the *same* connection, inside the
transaction SQLAlchemy began (so ``BEGIN IMMEDIATE`` and the commit are unchanged), with one
constant text per statement so that the driver's own statement cache keeps it prepared:

* a list of values is one parameter: ``IN (SELECT value FROM json_each(?))`` on SQLite,
  ``= ANY(%s)`` on PostgreSQL (:func:`in_list`, :func:`many`);
* statements are written with ``?`` placeholders (:func:`placeholders` converts them for
  psycopg);
* driver errors are raised as SQLAlchemy's (:class:`sqlalchemy.exc.DBAPIError` subclasses),
  so the ledger's retry of conflicts and busy stores treats them as before.

Everything else (migrations, queries, the CLI) keeps using SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def in_list(conn: Connection, column: str) -> str:
    """``column`` is one of the values bound by :func:`many` (one parameter)."""
    if is_postgresql(conn):
        return f"{column} = ANY(?)"
    return f"{column} IN (SELECT value FROM json_each(?))"


def many(conn: Connection, values: Iterable[Any]) -> Any:
    """Several values as the one parameter of :func:`in_list`."""
    return list(values) if is_postgresql(conn) else json.dumps(list(values))


@lru_cache(maxsize=1024)
def _percent_style(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def placeholders(conn: Connection, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, as this connection's driver wants it."""
    return _percent_style(sql) if is_postgresql(conn) else sql


def fetch_all(conn: Connection, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
    """The rows of ``sql`` (``?`` placeholders) as tuples, in the current transaction."""
    statement = placeholders(conn, sql)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement, params)
        rows: list[Sequence[Any]] = cursor.fetchall()
        return rows
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, statement, params, exc) from exc
    finally:
        cursor.close()


def execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` (``?`` placeholders) once per row, in the current transaction."""
    if not rows:
        return
    statement = placeholders(conn, sql)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement, rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, statement, rows[0], exc) from exc
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

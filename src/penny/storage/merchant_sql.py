"""SQL for the merchant console's other pages: a merchant's instruments and tokens, and the
connection a CSV export reads through. (The dashboard's figures by day are
:mod:`penny.storage.console_days_sql`.)

Every function takes the connection of a transaction the caller opened, and reads through
indexes that already exist: ``ix_instruments_recipient``, ``uq_tokens_caller_reference``
(its ``caller_id`` prefix), ``ix_tokens_instrument`` and ``ix_transactions_caller_received_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.sql import Select

from penny.domain.model import Instrument, Token
from penny.storage import payments_sql
from penny.storage.database import Database
from penny.storage.keyset import newest_first

_txns = payments_sql.transactions
_instruments = payments_sql.instruments
_tokens = payments_sql.tokens
T = TypeVar("T")

#: SQLite's page cache (KiB) of the connection a CSV export reads through: the export reads
#: the table once, in order, and gains nothing from the pool's usual 64 MiB.
EXPORT_CACHE_KIB: Final = 4096


@contextmanager
def export_connection(database: Database) -> Iterator[Connection]:
    """One connection for a whole CSV export (the caller ends its transaction after each
    chunk, so no snapshot is held between chunks). Every chunk through the same connection,
    with a small page cache on SQLite, keeps the server's memory flat: through the pool, each
    chunk could take another connection and fill its cache too."""
    with database.read_engine.connect() as conn:
        if not database.is_sqlite:
            yield conn
            return
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        conn.exec_driver_sql(f"PRAGMA cache_size=-{EXPORT_CACHE_KIB}")
        try:
            yield conn
        finally:
            conn.rollback()
            conn.exec_driver_sql(f"PRAGMA cache_size={int(before or 0)}")
            conn.exec_driver_sql("PRAGMA shrink_memory")


def _loaded(
    conn: Connection,
    query: Select[tuple[str]],
    load: Callable[[Connection, list[str]], dict[str, T]],
) -> list[T]:
    """The objects whose ids ``query`` selects, loaded by ``load``, in the query's order."""
    ids: list[str] = [str(value) for value in conn.execute(query).scalars()]
    found = load(conn, ids)
    return [found[i] for i in ids]


def instruments_of_merchant(
    conn: Connection, merchant_id: str, after: tuple[int, str] | None, limit: int
) -> list[Instrument]:
    """The instruments whose recipient is the merchant, newest first (``created_at``, id),
    after ``after``, at most ``limit``."""
    query = select(_instruments.c.id).where(_instruments.c.recipient_id == merchant_id)
    query = newest_first(query, _instruments.c.created_at, _instruments.c.id, after, limit)
    return _loaded(conn, query, payments_sql.load_instruments)


def tokens_of_merchant(
    conn: Connection, merchant_id: str, after: tuple[int, str] | None, limit: int
) -> list[Token]:
    """The tokens the merchant installed (its callers' tokens), newest first, as above."""
    query = select(_tokens.c.id).where(_tokens.c.caller_id == merchant_id)
    query = newest_first(query, _tokens.c.created_at, _tokens.c.id, after, limit)
    return _loaded(conn, query, payments_sql.load_tokens)


def tokens_of_instrument(conn: Connection, instrument_id: str) -> list[Token]:
    query = (
        select(_tokens.c.id)
        .where(_tokens.c.instrument_id == instrument_id)
        .order_by(_tokens.c.created_at, _tokens.c.id)
    )
    return _loaded(conn, query, payments_sql.load_tokens)

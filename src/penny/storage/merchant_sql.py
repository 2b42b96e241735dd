"""SQL for the merchant console's other pages: a merchant's instruments and tokens, and the
dashboard's figures by UTC day (totals by operation, the change of the prepaid liability and
the outstanding debt), with the cache of finished days (``console_days``, migration 0014).

Every function takes the connection of a transaction the caller opened, and reads through
indexes that already exist: ``ix_instruments_recipient``, ``uq_tokens_caller_reference``
(its ``caller_id`` prefix), ``ix_tokens_instrument`` and ``ix_transactions_caller_received_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, TypeVar

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.sql import Select

from penny.domain.fees import Method
from penny.domain.model import Instrument, Operation, Status, Token
from penny.storage import payments_sql, schema
from penny.storage.database import Database

_txns = payments_sql.transactions
_instruments = payments_sql.instruments
_tokens = payments_sql.tokens
days = schema.console_days
_DAY_US = 86_400 * 1_000_000
T = TypeVar("T")
#: A transaction completes at most this long after it was received (a bank transfer: four
#: days); a day's balance changes are looked for among transactions received this much earlier.
COMPLETION_US = 5 * _DAY_US


@dataclass(frozen=True, slots=True)
class DayChange:
    """How much a day's completed transactions moved the liability and the debt."""

    liability: int
    debt: int


@dataclass(frozen=True, slots=True)
class DayFacts:
    """What the dashboard needs of one UTC day: the successful transactions received that day
    by operation (amount, fees, count), and the change of the liability and the debt."""

    totals: dict[str, tuple[int, int, int]]
    change: DayChange


#: SQLite's page cache (KiB) of the connection a CSV export reads through: the export reads
#: the table once, in order, and gains nothing from the pool's usual 64 MiB.
EXPORT_CACHE_KIB: Final = 4096

_LIABILITY: Final = "Δliability"
_DEBT: Final = "Δdebt"
_CACHED: Final = ""


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


def instruments_of_merchant(conn: Connection, merchant_id: str, limit: int) -> list[Instrument]:
    """The instruments whose recipient is the merchant, newest first (at most ``limit``)."""
    query = (
        select(_instruments.c.id)
        .where(_instruments.c.recipient_id == merchant_id)
        .order_by(_instruments.c.created_at.desc(), _instruments.c.id)
        .limit(limit)
    )
    return _loaded(conn, query, payments_sql.load_instruments)


def tokens_of_merchant(conn: Connection, merchant_id: str, limit: int) -> list[Token]:
    """The tokens the merchant installed (its callers' tokens), newest first."""
    query = (
        select(_tokens.c.id)
        .where(_tokens.c.caller_id == merchant_id)
        .order_by(_tokens.c.created_at.desc(), _tokens.c.id)
        .limit(limit)
    )
    return _loaded(conn, query, payments_sql.load_tokens)


def tokens_of_instrument(conn: Connection, instrument_id: str) -> list[Token]:
    query = (
        select(_tokens.c.id)
        .where(_tokens.c.instrument_id == instrument_id)
        .order_by(_tokens.c.created_at, _tokens.c.id)
    )
    return _loaded(conn, query, payments_sql.load_tokens)


_LIABILITY_SIGNS: Final = {
    (Operation.fund_prepaid.value, None): 1,
    (Operation.pay.value, Method.prepaid.value): -1,
    (Operation.refund.value, Method.prepaid.value): 1,
}
_DEBT_SIGNS: Final = {
    (Operation.pay.value, Method.debt.value): 1,
    (Operation.refund.value, Method.debt.value): -1,
    (Operation.settle_debt.value, None): -1,
    (Operation.write_off_debt.value, None): -1,
}


def _sign(signs: dict[tuple[str, str | None], int], operation: str, method: str) -> int:
    return signs.get((operation, method), signs.get((operation, None), 0))


def day_facts(conn: Connection, caller_id: str, start: int, end: int) -> dict[int, DayFacts]:
    """The facts of every UTC day in ``[start, end)`` (``start`` day-aligned), from
    ``transactions`` in one range scan: the successful transactions received each day by
    operation, and the change the successful transactions completed each day made to the
    liability (a FundPrepaid adds, a Pay from a prepaid balance takes, its Refund gives back)
    and to the debt (a Pay on credit adds; its Refund, a SettleDebt and a WriteOffDebt take)."""
    received = (_txns.c.received_at - _txns.c.received_at % _DAY_US).label("received")
    completed = (_txns.c.completed_at - _txns.c.completed_at % _DAY_US).label("completed")
    rows = conn.execute(
        select(
            received,
            completed,
            _txns.c.operation,
            _txns.c.method,
            func.sum(_txns.c.amount),
            func.sum(_txns.c.fees),
            func.count(),
        )
        .where(
            _txns.c.caller_id == caller_id,
            _txns.c.received_at >= start - COMPLETION_US,
            _txns.c.received_at < end,
            _txns.c.status == Status.success.value,
        )
        .group_by(received, completed, _txns.c.operation, _txns.c.method)
    )
    totals: dict[int, dict[str, tuple[int, int, int]]] = {}
    liability: dict[int, int] = {}
    debt: dict[int, int] = {}
    for on, done, operation, method, amount, fees, count in rows:
        if on >= start:
            a, f, n = totals.setdefault(int(on), {}).get(operation, (0, 0, 0))
            totals[int(on)][operation] = (a + int(amount), f + int(fees), n + int(count))
        if done is not None and start <= done < end:
            day = int(done)
            liability[day] = liability.get(day, 0) + _sign(
                _LIABILITY_SIGNS, operation, method
            ) * int(amount)
            debt[day] = debt.get(day, 0) + _sign(_DEBT_SIGNS, operation, method) * int(amount)
    return {
        at: DayFacts(totals.get(at, {}), DayChange(liability.get(at, 0), debt.get(at, 0)))
        for at in range(start, end, _DAY_US)
    }


def cached_days(conn: Connection, caller_id: str, start: int, end: int) -> dict[int, DayFacts]:
    """The cached facts of days in ``[start, end)`` (days not cached are absent)."""
    rows = conn.execute(
        select(days.c.day, days.c.item, days.c.amount, days.c.fees, days.c.count).where(
            days.c.party_id == caller_id, days.c.day >= start, days.c.day < end
        )
    )
    items: dict[int, dict[str, tuple[int, int, int]]] = {}
    for at, item, amount, fees, count in rows:
        items.setdefault(int(at), {})[str(item)] = (int(amount), int(fees), int(count))
    found = {}
    for at, values in items.items():
        if _CACHED not in values:
            continue
        change = DayChange(values.get(_LIABILITY, (0, 0, 0))[0], values.get(_DEBT, (0, 0, 0))[0])
        totals = {k: v for k, v in values.items() if k not in (_CACHED, _LIABILITY, _DEBT)}
        found[at] = DayFacts(totals, change)
    return found


def cache_days(conn: Connection, caller_id: str, facts: dict[int, DayFacts]) -> None:
    """Remember finished days' facts (the caller makes sure each day can no longer change)."""
    rows = []
    for at, fact in facts.items():
        items = {
            **fact.totals,
            _LIABILITY: (fact.change.liability, 0, 0),
            _DEBT: (fact.change.debt, 0, 0),
            _CACHED: (0, 0, 0),
        }
        rows += [
            {"party_id": caller_id, "day": at, "item": k, "amount": a, "fees": f, "count": n}
            for k, (a, f, n) in items.items()
        ]
    if rows:
        conn.execute(insert(days), rows)

"""The merchant console's daily sums (``console_days``, migrations 0014 and 0020), kept up to
date by every write of ``transactions``.

Per caller (the merchant) and UTC day: the successful transactions received that day by
operation (amount, fees, count), and the change the successful transactions completed that
day made to the prepaid liability (``Δliability``: a FundPrepaid adds, a Pay from a prepaid
balance takes, its Refund gives back) and to the outstanding debt (``Δdebt``: a Pay on credit
adds; its Refund, a SettleDebt and a WriteOffDebt take).

:func:`record` is called by :func:`penny.storage.payments_sql.insert_transactions` and
``update_transactions`` in the same database transaction as the rows it sums: it adds what the
new rows contribute and takes away what the changed rows contributed before, so the sums are
exact at every commit and the dashboard reads at most one row per day and item, however many
transactions the period holds. :func:`rebuild` computes them again from ``transactions`` (the
migration that introduced them, and the bench's bulk seed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, delete, func, select

from penny.domain.fees import Method
from penny.domain.model import Operation, Status
from penny.storage import driver, schema

days = schema.console_days
_txns = schema.transactions
DAY_US: Final = 86_400 * 1_000_000
LIABILITY: Final = "Δliability"
DEBT: Final = "Δdebt"
_SUCCESS: Final = Status.success.value

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

Key = tuple[str, int, str]
Sums = dict[Key, list[int]]


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


def _sign(signs: dict[tuple[str, str | None], int], operation: str, method: str) -> int:
    return signs.get((operation, method), signs.get((operation, None), 0))


def _add(sums: Sums, key: Key, amount: int, fees: int, count: int) -> None:
    found = sums.setdefault(key, [0, 0, 0])
    found[0] += amount
    found[1] += fees
    found[2] += count


def contribute(sums: Sums, row: Mapping[str, Any], times: int, count: int = 1) -> None:
    """Add ``times`` what ``row`` (``count`` transactions alike, summed) contributes."""
    if row["status"] != _SUCCESS:
        return
    party, operation, method = row["caller_id"], row["operation"], row["method"]
    amount, fees = int(row["amount"]), int(row["fees"])
    received = int(row["received_at"])
    _add(
        sums,
        (party, received - received % DAY_US, operation),
        times * amount,
        times * fees,
        times * count,
    )
    if row["completed_at"] is None:
        return
    completed = int(row["completed_at"])
    day = completed - completed % DAY_US
    for item, signs in ((LIABILITY, _LIABILITY_SIGNS), (DEBT, _DEBT_SIGNS)):
        sign = _sign(signs, operation, method)
        if sign:
            _add(sums, (party, day, item), times * sign * amount, 0, 0)


#: Add a row's sums to the stored ones (a row created at zero when missing); the same text on
#: both stores, sent straight to the driver (see :mod:`penny.storage.driver`): it is on the
#: path of every Pay.
_UPSERT: Final = (
    "INSERT INTO console_days (party_id, day, item, amount, fees, count) {rows}"
    " ON CONFLICT (party_id, day, item) DO UPDATE SET amount = console_days.amount +"
    " excluded.amount, fees = console_days.fees + excluded.fees,"
    " count = console_days.count + excluded.count"
)
_UPSERT_ROW: Final = _UPSERT.format(rows="VALUES (?, ?, ?, ?, ?, ?)")
#: On PostgreSQL the rows go as six arrays in one statement: a statement per row cost ~5 µs
#: more per Pay in ``penny bench path`` (a batch there touches ~40 merchants). On SQLite,
#: ``executemany`` of the one-row statement is as fast (measured).
_UPSERT_ARRAYS: Final = _UPSERT.format(
    rows="SELECT * FROM unnest(?::varchar[], ?::bigint[], ?::varchar[], ?::bigint[],"
    " ?::bigint[], ?::integer[])"
)


def _upsert(conn: Connection, sums: Sums) -> None:
    """Add the sums to the table, keys in order (concurrent writers lock the same rows in the
    same order)."""
    rows = [(*key, a, f, n) for key, (a, f, n) in sorted(sums.items()) if a or f or n]
    if not rows:
        return
    if driver.is_postgresql(conn):
        columns = [list(column) for column in zip(*rows, strict=True)]
        driver.execute_many(conn, _UPSERT_ARRAYS, [columns])
    else:
        driver.execute_many(conn, _UPSERT_ROW, rows)


def record(
    conn: Connection, before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> None:
    """Rows of ``transactions`` changed from ``before`` (none for new rows) to ``after``."""
    sums: Sums = {}
    for row in before:
        contribute(sums, row, -1)
    for row in after:
        contribute(sums, row, 1)
    _upsert(conn, sums)


def rebuild(conn: Connection) -> None:
    """Every sum computed again from ``transactions``, in one grouped scan (in the caller's
    write transaction)."""
    received = (_txns.c.received_at - _txns.c.received_at % DAY_US).label("received_at")
    completed = (_txns.c.completed_at - _txns.c.completed_at % DAY_US).label("completed_at")
    group = (_txns.c.caller_id, received, completed, _txns.c.operation, _txns.c.method)
    found = conn.execute(
        select(
            *group,
            _txns.c.status,
            func.sum(_txns.c.amount).label("amount"),
            func.sum(_txns.c.fees).label("fees"),
            func.count().label("n"),
        )
        .where(_txns.c.status == _SUCCESS)
        .group_by(*group, _txns.c.status)
    )
    sums: Sums = {}
    for row in found:
        values = dict(row._mapping)
        contribute(sums, values, 1, int(values["n"]))
    conn.execute(delete(days))
    _upsert(conn, sums)


def day_facts(conn: Connection, party_id: str, start: int, end: int) -> dict[int, DayFacts]:
    """The facts of every UTC day in ``[start, end)`` (``start`` day-aligned)."""
    rows = conn.execute(
        select(days.c.day, days.c.item, days.c.amount, days.c.fees, days.c.count).where(
            days.c.party_id == party_id, days.c.day >= start, days.c.day < end
        )
    )
    totals: dict[int, dict[str, tuple[int, int, int]]] = {}
    changes: dict[int, dict[str, int]] = {}
    for at, item, amount, fees, count in rows:
        if item in (LIABILITY, DEBT):
            changes.setdefault(int(at), {})[str(item)] = int(amount)
        elif count:
            totals.setdefault(int(at), {})[str(item)] = (int(amount), int(fees), int(count))
    return {
        at: DayFacts(
            totals.get(at, {}),
            DayChange(changes.get(at, {}).get(LIABILITY, 0), changes.get(at, {}).get(DEBT, 0)),
        )
        for at in range(start, end, DAY_US)
    }

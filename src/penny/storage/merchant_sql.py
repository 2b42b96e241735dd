"""SQL for the merchant console's other pages: a merchant's instruments and tokens, and the
dashboard's figures by UTC day (totals by operation, the change of the prepaid liability and
the outstanding debt), with the cache of finished days (``console_days``, migration 0014).

Every function takes the connection of a transaction the caller opened, and reads through
indexes that already exist: ``ix_instruments_recipient``, ``uq_tokens_caller_reference``
(its ``caller_id`` prefix), ``ix_tokens_instrument`` and ``ix_transactions_caller_received_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, Connection, case, func, insert, select

from penny.domain.fees import Method
from penny.domain.model import Instrument, Operation, Status, Token
from penny.storage import payments_sql, schema

_txns = payments_sql.transactions
_instruments = payments_sql.instruments
_tokens = payments_sql.tokens
days = schema.console_days
_DAY_US = 86_400 * 1_000_000
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


_LIABILITY: Final = "Δliability"
_DEBT: Final = "Δdebt"
_CACHED: Final = ""


def instruments_of_merchant(conn: Connection, merchant_id: str, limit: int) -> list[Instrument]:
    """The instruments whose recipient is the merchant, newest first (at most ``limit``)."""
    ids = [
        row.id
        for row in conn.execute(
            select(_instruments.c.id)
            .where(_instruments.c.recipient_id == merchant_id)
            .order_by(_instruments.c.created_at.desc(), _instruments.c.id)
            .limit(limit)
        )
    ]
    found = payments_sql.load_instruments(conn, ids)
    return [found[i] for i in ids]


def tokens_of_merchant(conn: Connection, merchant_id: str, limit: int) -> list[Token]:
    """The tokens the merchant installed (its callers' tokens), newest first."""
    ids = [
        row.id
        for row in conn.execute(
            select(_tokens.c.id)
            .where(_tokens.c.caller_id == merchant_id)
            .order_by(_tokens.c.created_at.desc(), _tokens.c.id)
            .limit(limit)
        )
    ]
    found = payments_sql.load_tokens(conn, ids)
    return [found[i] for i in ids]


def tokens_of_instrument(conn: Connection, instrument_id: str) -> list[Token]:
    ids = [
        row.id
        for row in conn.execute(
            select(_tokens.c.id)
            .where(_tokens.c.instrument_id == instrument_id)
            .order_by(_tokens.c.created_at, _tokens.c.id)
        )
    ]
    found = payments_sql.load_tokens(conn, ids)
    return [found[i] for i in ids]


def _signed(*cases: tuple[ColumnElement[bool], int]) -> ColumnElement[int]:
    """``amount`` × the sign of the first case that holds (0 when none does)."""
    return case(*((when, _txns.c.amount * sign) for when, sign in cases), else_=0)


def daily_balance_changes(
    conn: Connection, caller_id: str, start: int, end: int
) -> dict[int, DayChange]:
    """The change of the merchant's prepaid liability and outstanding debt by UTC day of
    completion, for successful transactions completed in ``[start, end)``: a FundPrepaid adds
    to the liability, a Pay from a prepaid balance takes from it and its Refund gives back; a
    Pay on credit adds to the debt, its Refund, a SettleDebt and a WriteOffDebt take from it."""
    op, method = _txns.c.operation, _txns.c.method
    pay, refund = Operation.pay.value, Operation.refund.value
    liability = _signed(
        (op == Operation.fund_prepaid.value, 1),
        ((op == pay) & (method == Method.prepaid.value), -1),
        ((op == refund) & (method == Method.prepaid.value), 1),
    )
    debt = _signed(
        ((op == pay) & (method == Method.debt.value), 1),
        ((op == refund) & (method == Method.debt.value), -1),
        (op.in_((Operation.settle_debt.value, Operation.write_off_debt.value)), -1),
    )
    day = (_txns.c.completed_at - _txns.c.completed_at % _DAY_US).label("day")
    rows = conn.execute(
        select(day, func.sum(liability), func.sum(debt))
        .where(
            _txns.c.caller_id == caller_id,
            _txns.c.received_at >= start - COMPLETION_US,
            _txns.c.received_at < end,
            _txns.c.status == Status.success.value,
            _txns.c.completed_at >= start,
            _txns.c.completed_at < end,
        )
        .group_by(day)
    )
    return {int(row[0]): DayChange(int(row[1] or 0), int(row[2] or 0)) for row in rows}


def daily_totals(
    conn: Connection, caller_id: str, start: int, end: int
) -> dict[int, dict[str, tuple[int, int, int]]]:
    """Successful transactions of a merchant received in ``[start, end)``, by UTC day and
    operation: amount, fees, count."""
    day = (_txns.c.received_at - _txns.c.received_at % _DAY_US).label("day")
    rows = conn.execute(
        select(
            day,
            _txns.c.operation,
            func.sum(_txns.c.amount),
            func.sum(_txns.c.fees),
            func.count(),
        )
        .where(
            _txns.c.caller_id == caller_id,
            _txns.c.received_at >= start,
            _txns.c.received_at < end,
            _txns.c.status == Status.success.value,
        )
        .group_by(day, _txns.c.operation)
    )
    found: dict[int, dict[str, tuple[int, int, int]]] = {}
    for at, operation, amount, fees, count in rows:
        found.setdefault(int(at), {})[str(operation)] = (int(amount), int(fees), int(count))
    return found


def day_facts(conn: Connection, caller_id: str, start: int, end: int) -> dict[int, DayFacts]:
    """The facts of every day in ``[start, end)`` (day-aligned ``start``), from
    ``transactions``."""
    totals = daily_totals(conn, caller_id, start, end)
    changes = daily_balance_changes(conn, caller_id, start, end)
    return {
        at: DayFacts(totals.get(at, {}), changes.get(at, DayChange(0, 0)))
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

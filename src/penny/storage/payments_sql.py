"""SQL for the payments domain: instruments, tokens, transactions, system accounts, settings.

Rows become the immutable dataclasses of :mod:`penny.domain.model` and back. Reads that a
write depends on lock their rows on PostgreSQL (``FOR UPDATE``); on SQLite the write
transaction already holds the database's single write lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Table,
    and_,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.sql import Select

from penny.domain.fees import Method
from penny.domain.model import (
    FeePayer,
    Instrument,
    InstrumentKind,
    Operation,
    Status,
    StatusCode,
    Token,
    TokenFilter,
    TokenKind,
    TokenStatus,
    Transaction,
)
from penny.storage import console_days_sql, driver, schema
from penny.storage.keyset import S, newest_first
from penny.storage.records import Stored

system_accounts = schema.system_accounts
settings = schema.settings
instruments = schema.instruments
tokens = schema.tokens
transactions = schema.transactions


_INSTRUMENT_NAMES: Final = tuple(c.name for c in instruments.c)
_TOKEN_NAMES: Final = tuple(c.name for c in tokens.c)
_TRANSACTION_NAMES: Final = tuple(c.name for c in transactions.c)
_TRANSACTION_COLUMNS: Final = ", ".join(f"t.{name}" for name in _TRANSACTION_NAMES)
_INSERT_TRANSACTION: Final = (
    f"INSERT INTO transactions ({', '.join(_TRANSACTION_NAMES)}) "
    f"VALUES ({', '.join('?' for _ in _TRANSACTION_NAMES)})"
)


def _lock(query: Select[Any], conn: Connection) -> Select[Any]:
    return query.with_for_update() if conn.dialect.name == "postgresql" else query


# -- conversions -------------------------------------------------------------------------


_INSTRUMENT: Final = Stored(Instrument, enums={"kind": InstrumentKind})
_TOKEN: Final = Stored(Token, enums={"kind": TokenKind, "status": TokenStatus})
_TRANSACTION: Final = Stored(
    Transaction,
    enums={
        "operation": Operation,
        "method": Method,
        "status": Status,
        "status_code": StatusCode,
        "fees_paid_by": FeePayer,
    },
    flags=("completes_ok",),
)


# -- system accounts and settings --------------------------------------------------------


def system_account_ids(conn: Connection, currency: str) -> dict[str, int]:
    rows = conn.execute(
        select(system_accounts.c.name, system_accounts.c.ledger_account_id).where(
            system_accounts.c.currency == currency
        )
    )
    return {str(name): int(account_id) for name, account_id in rows}


def add_system_accounts(conn: Connection, currency: str, ids: Mapping[str, int]) -> None:
    conn.execute(
        insert(system_accounts),
        [{"name": n, "currency": currency, "ledger_account_id": i} for n, i in ids.items()],
    )


def get_setting(conn: Connection, name: str) -> str | None:
    value: str | None = conn.execute(
        select(settings.c.value).where(settings.c.name == name)
    ).scalar()
    return value


def put_setting(conn: Connection, name: str, value: str) -> None:
    done = conn.execute(update(settings).where(settings.c.name == name).values(value=value))
    if done.rowcount == 0:
        conn.execute(insert(settings).values(name=name, value=value))


# -- instruments and tokens --------------------------------------------------------------


def load_instruments(
    conn: Connection, ids: Iterable[str], *, lock: bool = False
) -> dict[str, Instrument]:
    return driver.records_by_id(
        conn, "instruments", _INSTRUMENT_NAMES, ids, _INSTRUMENT.record, lock=lock
    )


def insert_instrument(conn: Connection, instrument: Instrument) -> None:
    conn.execute(insert(instruments).values(**_INSTRUMENT.row(instrument)))


_UPDATED_INSTRUMENT_NAMES: Final = tuple(name for name in _INSTRUMENT_NAMES if name != "id")
_UPDATE_INSTRUMENT: Final = (
    f"UPDATE instruments SET {', '.join(f'{name} = ?' for name in _UPDATED_INSTRUMENT_NAMES)}"
    " WHERE id = ?"
)


def update_instruments(conn: Connection, changed: Iterable[Instrument]) -> None:
    """One statement for all (executemany). The id is not in the SET list: SQLite checks the
    foreign keys of every child row (tokens, unindexed) when a parent key is set (#8)."""
    rows = []
    for instrument in changed:
        row = _INSTRUMENT.row(instrument)
        rows.append((*(row[name] for name in _UPDATED_INSTRUMENT_NAMES), instrument.id))
    driver.execute_many(conn, _UPDATE_INSTRUMENT, rows)


def load_tokens(conn: Connection, ids: Iterable[str], *, lock: bool = False) -> dict[str, Token]:
    """The tokens with these ids; ``lock`` takes their row locks on PostgreSQL (a writer
    that decides from what it read, e.g. CancelToken, waits for another one's commit and reads
    what it wrote)."""
    return driver.records_by_id(conn, "tokens", _TOKEN_NAMES, ids, _TOKEN.record, lock=lock)


def tokens_by_reference(
    conn: Connection, caller_id: str, references: Iterable[str]
) -> dict[str, Token]:
    wanted = sorted(set(references))
    if not wanted:
        return {}
    rows = conn.execute(
        select(tokens).where(
            and_(tokens.c.caller_id == caller_id, tokens.c.caller_reference.in_(wanted))
        )
    )
    return {row.caller_reference: _TOKEN.record(row._mapping) for row in rows}


def find_tokens(conn: Connection, caller_id: str, only: TokenFilter) -> list[Token]:
    rows = find_owned(conn, tokens, caller_id, only)
    return [_TOKEN.record(row) for row in rows]


def active_tokens_charging(conn: Connection, sender_id: str, method_id: str) -> list[Token]:
    """The buyer's active tokens that charge payment method ``method_id`` (a prepaid
    instrument's funding token, a tab's settlement token), oldest first."""
    rows = conn.execute(
        select(tokens)
        .where(
            tokens.c.sender_id == sender_id,
            tokens.c.payment_method_id == method_id,
            tokens.c.status == TokenStatus.active.value,
        )
        .order_by(tokens.c.created_at, tokens.c.id)
    )
    return [_TOKEN.record(row._mapping) for row in rows]


def rows_with_ids(
    conn: Connection, table: Table, ids: Iterable[str], *, lock: bool = False
) -> list[Mapping[Any, Any]]:
    """The rows of ``table`` whose id is one of ``ids`` (unknown ids are simply absent);
    ``lock`` as in :func:`load_tokens`."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    query = select(table).where(table.c.id.in_(wanted)).order_by(table.c.id)
    return [row._mapping for row in conn.execute(_lock(query, conn) if lock else query)]


def row_by_reference(
    conn: Connection, table: Table, caller_id: str, reference: str
) -> Mapping[Any, Any] | None:
    """The row of ``table`` the caller made with CallerReference ``reference``, if any."""
    where = and_(table.c.caller_id == caller_id, table.c.caller_reference == reference)
    row = conn.execute(select(table).where(where)).first()
    return None if row is None else row._mapping


_Record = TypeVar("_Record")


@dataclass(frozen=True, slots=True)
class CallerRecords(Generic[_Record]):
    """A table of records callers make under a CallerReference (payment instructions,
    recipient tokens), read as records by ``record``."""

    table: Table
    record: Callable[[Mapping[Any, Any]], _Record]

    def with_ids(
        self, conn: Connection, ids: Iterable[str], *, lock: bool = False
    ) -> dict[str, _Record]:
        rows = rows_with_ids(conn, self.table, ids, lock=lock)
        return {row["id"]: self.record(row) for row in rows}

    def by_reference(self, conn: Connection, caller_id: str, reference: str) -> _Record | None:
        row = row_by_reference(conn, self.table, caller_id, reference)
        return None if row is None else self.record(row)


def find_owned(
    conn: Connection, table: Table, caller_id: str, only: TokenFilter
) -> list[Mapping[Any, Any]]:
    """The rows of ``table`` (tokens or payment instructions) the caller owns, oldest first,
    narrowed by whichever of status, caller reference and friendly name ``only`` gives."""
    query = select(table).where(table.c.caller_id == caller_id)
    for column, value in (
        ("status", None if only.status is None else only.status.value),
        ("caller_reference", only.caller_reference),
        ("friendly_name", only.friendly_name),
    ):
        if value is not None:
            query = query.where(table.c[column] == value)
    rows = conn.execute(query.order_by(table.c.created_at, table.c.id))
    return [row._mapping for row in rows]


def insert_tokens(conn: Connection, new: Sequence[Token]) -> None:
    if new:
        conn.execute(insert(tokens), [_TOKEN.row(token) for token in new])


def set_token_status(conn: Connection, token: Token) -> None:
    conn.execute(
        update(tokens)
        .where(tokens.c.id == token.id)
        .values(status=token.status.value, cancelled_at=token.cancelled_at)
    )


# -- transactions ------------------------------------------------------------------------


def transactions_by_reference(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Transaction]:
    """The transactions with these (caller, CallerReference) keys, found through their unique
    index: the keys are joined as a ``VALUES`` list, since neither store uses the index for
    ``(a, b) IN (...)`` or for ``caller_reference IN (...)`` alone (a scan of every
    transaction per batch, growing with history: #8)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    sql = (
        f"WITH wanted (caller_id, caller_reference) AS (VALUES {_pairs(len(wanted))}) "
        f"SELECT {_TRANSACTION_COLUMNS} FROM wanted JOIN transactions t"
        " ON t.caller_id = wanted.caller_id AND t.caller_reference = wanted.caller_reference"
    )
    rows = driver.fetch_all(conn, sql, tuple(value for key in wanted for value in key))
    found = (_TRANSACTION.record(dict(zip(_TRANSACTION_NAMES, row, strict=True))) for row in rows)
    return {(txn.caller_id, txn.caller_reference): txn for txn in found}


@lru_cache(maxsize=256)
def _pairs(count: int) -> str:
    return ", ".join(["(?, ?)"] * count)


_TRANSACTIONS: Final = CallerRecords(transactions, _TRANSACTION.record)


def load_transactions(
    conn: Connection, ids: Iterable[str], *, lock: bool = False
) -> dict[str, Transaction]:
    return _TRANSACTIONS.with_ids(conn, ids, lock=lock)


def due_transactions(
    conn: Connection, now: int, limit: int, status: Status = Status.pending
) -> list[str]:
    """Transactions in ``status`` whose time has come: pending ones whose money source has
    answered, or (``Status.reserved``) reserves past their timeout. Each status has its own
    partial index on ``completes_at`` (migrations 0003 and 0012)."""
    rows = conn.execute(
        select(transactions.c.id)
        .where(
            and_(
                transactions.c.status == status.value,
                transactions.c.completes_at.is_not(None),
                transactions.c.completes_at <= now,
            )
        )
        .order_by(transactions.c.completes_at, transactions.c.id)
        .limit(limit)
    )
    return [row.id for row in rows]


def insert_transactions(conn: Connection, new: Sequence[Transaction]) -> None:
    rows = []
    dicts = []
    for txn in new:
        row = _TRANSACTION.row(txn)
        dicts.append(row)
        rows.append(tuple(row[name] for name in _TRANSACTION_NAMES))
    driver.execute_many(conn, _INSERT_TRANSACTION, rows)
    console_days_sql.record(conn, (), dicts)


#: What a transaction's change of state writes (the rest never changes once it is made).
_CHANGED_NAMES: Final = (
    "status",
    "status_code",
    "status_message",
    "completed_at",
    "refunded",
    "journal_id",
    "fees",
    "marketplace_fee",  # a released marketplace reserve charged no fee (#19)
)


def update_transactions(
    conn: Connection, changes: Sequence[tuple[Transaction, Transaction]]
) -> None:
    """Write each ``(before, after)`` pair's changed state — ``before`` is the row as read under
    its lock in this database transaction — and what it changes of the console's daily sums
    (:mod:`penny.storage.console_days_sql`)."""
    before = [_TRANSACTION.row(was) for was, _ in changes]
    after = [_TRANSACTION.row(now) for _, now in changes]
    for row in after:
        changed = {name: row[name] for name in _CHANGED_NAMES}
        conn.execute(update(transactions).where(transactions.c.id == row["id"]).values(changed))
    console_days_sql.record(conn, before, after)


def refunds_of(conn: Connection, parent_id: str) -> list[Transaction]:
    rows = conn.execute(
        select(transactions)
        .where(transactions.c.parent_id == parent_id)
        .order_by(transactions.c.received_at, transactions.c.journal_id, transactions.c.id)
    )
    return [_TRANSACTION.record(row._mapping) for row in rows]


def activity(
    conn: Connection,
    party_id: str,
    *,
    start: int,
    end: int,
    operation: Operation | None,
    method: Method | None,
    status: Status | None,
    roles: Sequence[str],
    ascending: bool,
    limit: int,
) -> list[Transaction]:
    """Transactions the party took part in, in a date window, filtered and ordered."""
    t = transactions.c
    by_role = {"Caller": t.caller_id, "Sender": t.sender_id, "Recipient": t.recipient_id}
    chosen = [by_role[role] for role in roles] if roles else list(by_role.values())
    query = _naming(select(transactions), party_id, *chosen)
    query = narrowed(query, operation=operation, status=status, since=start, until=end)
    if method is not None:
        query = query.where(t.method == method.value)
    order = t.received_at.asc() if ascending else t.received_at.desc()
    rows = conn.execute(query.order_by(order, t.id).limit(limit))
    return [_TRANSACTION.record(row._mapping) for row in rows]


def _naming(query: S, party_id: str | None, *roles: Column[str]) -> S:
    """``query`` narrowed to the rows naming ``party_id`` in any of ``roles`` (all when None)."""
    if party_id is None:
        return query
    return query.where(or_(*(role == party_id for role in roles)))


def _newest_transactions(
    conn: Connection, query: Select[Any], after: tuple[int, str] | None, limit: int
) -> list[Transaction]:
    """The transactions ``query`` selects, newest first, after the cursor ``after``."""
    t = transactions.c
    rows = conn.execute(newest_first(query, t.received_at, t.id, after, limit))
    return [_TRANSACTION.record(row._mapping) for row in rows]


def narrowed(
    query: S,
    *,
    operation: Operation | None,
    status: Status | None,
    since: int | None,
    until: int | None,
) -> S:
    """``query`` (over transactions) narrowed to those of ``operation`` and ``status`` received
    in ``[since, until)``, each left out when ``None``."""
    t = transactions.c
    if operation is not None:
        query = query.where(t.operation == operation.value)
    if status is not None:
        query = query.where(t.status == status.value)
    if since is not None:
        query = query.where(t.received_at >= since)
    if until is not None:
        query = query.where(t.received_at < until)
    return query


def page_of_transactions(
    conn: Connection,
    party_id: str,
    *,
    after: tuple[int, str] | None,
    operation: Operation | None,
    status: Status | None,
    since: int | None,
    until: int | None,
    limit: int,
) -> list[Transaction]:
    """The JSON API's list: the party's transactions (as caller or recipient), newest first by
    ``(received_at, id)``, those after the cursor ``after`` (the last one of the page before)."""
    t = transactions.c
    query = _naming(select(transactions), party_id, t.caller_id, t.recipient_id)
    narrow = narrowed(query, operation=operation, status=status, since=since, until=until)
    return _newest_transactions(conn, narrow, after, limit)


# -- the operator's views (penny transactions …, penny instruments …) -------------------------


def list_transactions(
    conn: Connection,
    *,
    party_id: str | None = None,
    instrument_id: str | None = None,
    operation: Operation | None = None,
    status: Status | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 50,
) -> list[Transaction]:
    """Every merchant's transactions, newest first, filtered (``party_id`` in any role)."""
    t = transactions.c
    query = _naming(select(transactions), party_id, t.caller_id, t.sender_id, t.recipient_id)
    if instrument_id is not None:
        query = query.where(t.instrument_id == instrument_id)
    narrow = narrowed(query, operation=operation, status=status, since=since, until=until)
    return _newest_transactions(conn, narrow, None, limit)


def list_instruments(
    conn: Connection,
    *,
    party_id: str | None = None,
    kind: InstrumentKind | None = None,
    limit: int = 50,
) -> list[Instrument]:
    """Instruments, newest first; ``party_id`` as their buyer or their merchant."""
    i = instruments.c
    query = _naming(select(instruments), party_id, i.sender_id, i.recipient_id)
    if kind is not None:
        query = query.where(i.kind == kind.value)
    rows = conn.execute(newest_first(query, i.created_at, i.id, None, limit))
    return [_INSTRUMENT.record(row._mapping) for row in rows]


def tokens_of_instrument(conn: Connection, instrument_id: str) -> list[Token]:
    rows = conn.execute(
        select(tokens)
        .where(tokens.c.instrument_id == instrument_id)
        .order_by(tokens.c.created_at, tokens.c.id)
    )
    return [_TOKEN.record(row._mapping) for row in rows]


def page_of_instruments(
    conn: Connection,
    recipient_id: str,
    *,
    after: tuple[int, str] | None,
    kind: InstrumentKind | None,
    limit: int,
) -> list[Instrument]:
    """A merchant's instruments, newest first, those after the cursor ``(created_at, id)``."""
    query = select(instruments).where(instruments.c.recipient_id == recipient_id)
    if kind is not None:
        query = query.where(instruments.c.kind == kind.value)
    c = instruments.c
    rows = conn.execute(newest_first(query, c.created_at, c.id, after, limit))
    return [_INSTRUMENT.record(row._mapping) for row in rows]


def pays_with_token(conn: Connection, sender_id: str, token_id: str) -> list[Transaction]:
    """The Pays made with sender token ``token_id`` of buyer ``sender_id``, oldest first (a
    subscription's transactions, #19): found through the buyer's index on ``sender_id``."""
    query = (
        select(transactions)
        .where(
            and_(
                transactions.c.sender_id == sender_id,
                transactions.c.sender_token_id == token_id,
                transactions.c.operation == Operation.pay.value,
            )
        )
        .order_by(transactions.c.received_at, transactions.c.id)
    )
    return [_TRANSACTION.record(row._mapping) for row in conn.execute(query)]

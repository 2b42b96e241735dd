"""SQL for the account site (tables and indexes made by migration 0008): console sessions, the
log of console actions, and the reads behind the merchant console and the buyer account.

Every function takes the connection of a transaction the caller opened. Transactions are
listed newest first with keyset pagination on ``(received_at, id)``: a page is one index range
scan whatever its depth (``ix_transactions_caller_received_id`` for a merchant,
``ix_transactions_instrument_received`` for an instrument).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

from sqlalchemy import (
    Connection,
    Table,
    case,
    delete,
    insert,
    or_,
    select,
)
from sqlalchemy.sql import Select

from penny.domain.model import Instrument, Operation, Status, Token, Transaction
from penny.ledger.model import JournalKind, PendingState
from penny.storage import payments_sql, schema
from penny.storage.keyset import newest_first
from penny.storage.parties_sql import parties

sessions = schema.console_sessions
actions = schema.console_actions

_txns = payments_sql.transactions

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class SessionRow:
    id_hash: str
    party_id: str
    actor: str
    csrf_token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class ActionRow:
    id: int
    actor: str
    action: str
    subject: str
    detail: str
    at: int


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    """Which transactions a list shows: one merchant's (as caller), one instrument's, or
    both (a merchant's on one instrument)."""

    caller_id: str | None = None
    instrument_id: str | None = None
    since: int | None = None
    until: int | None = None
    operation: Operation | None = None
    status: Status | None = None
    #: A transaction id or a CallerReference (exact).
    search: str | None = None
    #: The buyer's account id (the transaction's sender).
    sender_id: str | None = None


# -- sessions ------------------------------------------------------------------------------


def insert_session(conn: Connection, row: SessionRow, now: int) -> None:
    conn.execute(insert(sessions).values(**asdict(row), created_at=now))


def load_session(conn: Connection, id_hash: str, now: int) -> SessionRow | None:
    """The session, unless it is unknown or expired."""
    row = conn.execute(
        select(sessions).where(sessions.c.id_hash == id_hash, sessions.c.expires_at > now)
    ).first()
    if row is None:
        return None
    return SessionRow(row.id_hash, row.party_id, row.actor, row.csrf_token, row.expires_at)


def delete_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.id_hash == id_hash))


def delete_sessions_of(conn: Connection, actor: str) -> None:
    """End every session signed in as ``actor`` (a revoked key signs nobody in any more)."""
    conn.execute(delete(sessions).where(sessions.c.actor == actor))


def delete_expired(conn: Connection, now: int) -> None:
    conn.execute(delete(sessions).where(sessions.c.expires_at <= now))


# -- the log of console actions ----------------------------------------------------------


def record_action(
    conn: Connection, party_id: str, actor: str, action: str, subject: str, detail: str, at: int
) -> None:
    conn.execute(
        insert(actions).values(
            party_id=party_id,
            actor=actor[:254],
            action=action,
            subject=subject[:128],
            detail=detail[:512],
            at=at,
        )
    )


def actions_of(conn: Connection, party_id: str, limit: int = 200) -> list[ActionRow]:
    """A party's console actions, newest first."""
    rows = conn.execute(
        select(actions)
        .where(actions.c.party_id == party_id)
        .order_by(actions.c.id.desc())
        .limit(limit)
    )
    return [ActionRow(r.id, r.actor, r.action, r.subject, r.detail, r.at) for r in rows]


# -- transactions --------------------------------------------------------------------------


def page_query(
    where: TransactionFilter, after: tuple[int, str] | None, limit: int
) -> Select[tuple[str]]:
    """The statement of one page of ids (exposed so a test can read its query plan)."""
    assert where.caller_id is not None or where.instrument_id is not None
    query = select(_txns.c.id)
    if where.caller_id is not None:
        query = query.where(_txns.c.caller_id == where.caller_id)
    if where.instrument_id is not None:
        query = query.where(_txns.c.instrument_id == where.instrument_id)
    query = payments_sql.narrowed(
        query,
        operation=where.operation,
        status=where.status,
        since=where.since,
        until=where.until,
    )
    if where.sender_id is not None:
        query = query.where(_txns.c.sender_id == where.sender_id)
    if where.search:
        query = query.where(
            or_(_txns.c.id == where.search, _txns.c.caller_reference == where.search)
        )
    return newest_first(query, _txns.c.received_at, _txns.c.id, after, limit)


def transactions_page(
    conn: Connection, where: TransactionFilter, after: tuple[int, str] | None, limit: int
) -> list[Transaction]:
    """At most ``limit`` transactions, newest first, older than ``after`` (received_at, id)."""
    return _in_order(conn, page_query(where, after, limit), payments_sql.load_transactions)


def _in_order(
    conn: Connection,
    query: Select[tuple[str]],
    load: Callable[[Connection, list[str]], Mapping[str, R]],
) -> list[R]:
    """The records whose ids ``query`` selects, loaded by ``load``, in the query's order."""
    ids = [row.id for row in conn.execute(query)]
    found = load(conn, ids)
    return [found[i] for i in ids]


# -- the buyer's instruments and tokens -----------------------------------------------------


def _newest_of_buyer(table: Table, buyer_id: str) -> Select[tuple[str]]:
    """The ids of the buyer's rows of ``table`` (instruments, tokens), newest first."""
    return (
        select(table.c.id)
        .where(table.c.sender_id == buyer_id)
        .order_by(table.c.created_at.desc(), table.c.id)
    )


def instruments_of_buyer(conn: Connection, buyer_id: str) -> list[Instrument]:
    query = _newest_of_buyer(payments_sql.instruments, buyer_id)
    return _in_order(conn, query, payments_sql.load_instruments)


def tokens_of_buyer(conn: Connection, buyer_id: str) -> list[Token]:
    return _in_order(
        conn, _newest_of_buyer(payments_sql.tokens, buyer_id), payments_sql.load_tokens
    )


@dataclass(frozen=True, slots=True)
class BalanceLine:
    """One movement of a Penny balance: a leg on its ledger account, with its journal."""

    journal_id: int
    at: int
    #: Money in (+) or out (−) of the balance, in minor units.
    amount: int
    kind: JournalKind
    pending_state: PendingState
    transaction: Transaction | None


def balance_activity(conn: Connection, account_id: int, limit: int) -> list[BalanceLine]:
    """The newest ``limit`` legs on a balance account (``ix_ledger_legs_account_id``), with
    the payments transaction each journal belongs to (``None``: a journal of no transaction,
    such as a deposit)."""
    legs, journals = schema.legs, schema.journals
    rows = conn.execute(
        select(
            legs.c.journal_id,
            legs.c.amount,
            journals.c.created_at,
            journals.c.kind,
            journals.c.pending_state,
        )
        .join(journals, journals.c.id == legs.c.journal_id)
        .where(legs.c.account_id == account_id)
        .order_by(legs.c.journal_id.desc(), legs.c.idx)
        .limit(limit)
    ).all()
    ids = [int(row.journal_id) for row in rows]
    by_journal: dict[int, Transaction] = {}
    if ids:
        found = conn.execute(
            select(_txns.c.id, _txns.c.journal_id, _txns.c.pending_journal_id).where(
                or_(_txns.c.journal_id.in_(ids), _txns.c.pending_journal_id.in_(ids))
            )
        ).all()
        loaded = payments_sql.load_transactions(conn, [row.id for row in found])
        for row in found:
            for journal in (row.journal_id, row.pending_journal_id):
                if journal is not None:
                    by_journal[int(journal)] = loaded[row.id]
    return [
        BalanceLine(
            int(row.journal_id),
            int(row.created_at),
            -int(row.amount),  # a credit (−) to a balance is money in
            JournalKind(row.kind),
            PendingState(row.pending_state),
            by_journal.get(int(row.journal_id)),
        )
        for row in rows
    ]


def party_names(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(select(parties.c.id, parties.c.name).where(parties.c.id.in_(wanted)))
    return {row.id: row.name for row in rows}


def account_labels(conn: Connection, account_ids: Sequence[int]) -> dict[int, str]:
    """What each ledger account is, in words: a party's book, an instrument, a system account."""
    wanted = sorted(set(account_ids))
    labels: dict[int, str] = {}
    if not wanted:
        return labels
    books = (
        (parties.c.payable_account_id, "payable balance"),
        (parties.c.prepaid_issued_account_id, "prepaid value issued"),
        (parties.c.credit_extended_account_id, "credit extended"),
        (parties.c.balance_account_id, "Penny balance"),
    )
    for column, what in books:
        for row in conn.execute(select(column, parties.c.name).where(column.in_(wanted))):
            labels[int(row[0])] = f"{row[1]}: {what}"
    instruments = payments_sql.instruments
    kind_name = case(
        (instruments.c.kind == "prepaid", "prepaid instrument"), else_="credit instrument"
    )
    for account, kind, instrument_id in conn.execute(
        select(instruments.c.ledger_account_id, kind_name, instruments.c.id).where(
            instruments.c.ledger_account_id.in_(wanted)
        )
    ):
        labels[int(account)] = f"{kind} {instrument_id}"
    system = payments_sql.system_accounts
    for account, name in conn.execute(
        select(system.c.ledger_account_id, system.c.name).where(
            system.c.ledger_account_id.in_(wanted)
        )
    ):
        labels[int(account)] = f"Penny: {name}"
    return labels

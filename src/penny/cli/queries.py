"""The operator's read-only views: ``penny accounts list``, ``penny transactions list|show``
and ``penny instruments list|show``.

They read the store directly, across every merchant (unlike the FPS API, where each caller
sees its own), so that an operator can see the state without SQL. Lists are newest first
(accounts: oldest first), ``--limit`` long, and print as text, ``--json`` (one object) or
``--csv`` (a header row, then one row per item). Amounts are decimal strings in dollars;
times are ISO 8601 UTC in text and CSV, microseconds since the epoch in JSON. Registered by
:mod:`penny.cli.main`; see docs/cli.md.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer

from penny.cli.accounts import accounts_app, open_directory, open_services, party_json
from penny.cli.base import penny_typer
from penny.cli.common import DatabaseOption, JsonOption, app, emit, fail
from penny.domain.model import Instrument, InstrumentKind, Operation, Status, Token, Transaction
from penny.domain.parties import Party, PartyKind
from penny.epoch import to_datetime
from penny.money import Money
from penny.parties import Directory
from penny.services.payment_queries import BalanceQuery
from penny.storage import parties_sql
from penny.storage import payments_sql as sql

transactions_app = penny_typer("Transactions of every merchant: list them, show one.")
instruments_app = penny_typer("Prepaid and credit instruments: list them, show one.")
app.add_typer(transactions_app, name="transactions")
app.add_typer(instruments_app, name="instruments")

E = TypeVar("E")

CsvOption = Annotated[
    bool, typer.Option("--csv", help="Print CSV: a header row, then one row per item.")
]
LimitOption = Annotated[
    int, typer.Option(min=1, max=10_000, metavar="N", help="Show at most N, newest first.")
]
PartyFilter = Annotated[
    str | None,
    typer.Option(
        "--account",
        "-a",
        metavar="ID|EMAIL",
        help="Only those this account took part in (as caller, sender or recipient).",
        show_default=False,
    ),
]


def _when(micros: int | None) -> str:
    if micros is None:
        return ""
    return to_datetime(micros).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(text: str | None, option: str) -> int | None:
    """``YYYY-MM-DD`` or an ISO 8601 time (UTC unless it says otherwise) → microseconds."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail(
            f"{option} {text!r} is not a date like 2026-12-01 or 2026-12-01T10:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _choice(enum: type[E], text: str | None, option: str) -> E | None:
    """The member of ``enum`` whose value is ``text`` (any case), or a clear error."""
    if text is None:
        return None
    members: list[Any] = list(enum)  # type: ignore[call-overload]
    for member in members:
        if member.value.lower() == text.lower():
            return member  # type: ignore[no-any-return]
    names = ", ".join(member.value for member in members)
    raise fail(f"{option} must be one of {names}, not {text!r}")


def _dollars(minor: int | None, currency: str = "USD") -> str:
    return "" if minor is None else Money(minor, currency).plain()


def _party_id(directory: Directory, wanted: str | None) -> str | None:
    if wanted is None:
        return None
    party = directory.find(wanted)
    if party is None:
        raise fail(f"no account has the id or email {wanted!r}")
    return party.id


def _print_rows(
    as_json: bool,
    as_csv: bool,
    key: str,
    rows: Sequence[dict[str, Any]],
    csv_row: Callable[[dict[str, Any]], dict[str, Any]],
    text: Callable[[dict[str, Any]], str],
) -> None:
    """A list as one JSON object ``{key: rows}``, as CSV, or as one text line per row."""
    if as_json and as_csv:
        raise fail("choose one of --json and --csv")
    if as_csv:
        converted = [csv_row(row) for row in rows]
        columns = list(converted[0]) if converted else list(csv_row({}))
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(converted)
        return
    emit(as_json, {key: list(rows)}, [text(row) for row in rows] or [f"(no {key})"])


def _only(metavar: str, help_: str) -> Any:
    """A filter option: ``--name METAVAR``, no default shown (typer.Option's type is Any)."""
    return typer.Option(metavar=metavar, help=help_, show_default=False)


# -- accounts list -------------------------------------------------------------------------


def _party_json(party: Party) -> dict[str, Any]:
    """``accounts show``'s fields but the ledger accounts (a list has no room for them)."""
    shown = party_json(party)
    del shown["ledger_accounts"]
    return shown


def _party_csv(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("id", ""),
        "kind": row.get("kind", ""),
        "name": row.get("name", ""),
        "email": row.get("email", ""),
        "created_at": _when(row.get("created_at")),
        "ipn_url": row.get("ipn_url") or "",
    }


@accounts_app.command("list", short_help="Every account, oldest first.")
def accounts_list(
    kind: Annotated[
        str | None,
        typer.Option(metavar="KIND", help="Only business or only personal accounts."),
    ] = None,
    limit: LimitOption = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Every account, oldest first: id, kind, name, email, when it was opened."""
    wanted = _choice(PartyKind, kind, "--kind")
    with open_directory(database) as directory, directory.database.read() as conn:
        parties = parties_sql.list_parties(conn, wanted, limit)
    _print_rows(
        as_json,
        as_csv,
        "accounts",
        [_party_json(p) for p in parties],
        _party_csv,
        lambda r: (
            f"{r['id']}  {r['kind']:<8}  {_when(r['created_at'])}  {r['name']} <{r['email']}>"
        ),
    )


# -- transactions --------------------------------------------------------------------------


def _transaction_json(txn: Transaction) -> dict[str, Any]:
    return {
        "id": txn.id,
        "operation": txn.operation.value,
        "status": txn.status.value,
        "amount": _dollars(txn.amount, txn.currency),
        "currency": txn.currency,
        "fees": _dollars(txn.fees, txn.currency),
        "method": txn.method.value,
        "caller_id": txn.caller_id,
        "caller_reference": txn.caller_reference,
        "sender_id": txn.sender_id,
        "recipient_id": txn.recipient_id,
        "instrument_id": txn.instrument_id,
        "sender_token_id": txn.sender_token_id,
        "parent_id": txn.parent_id,
        "refunded": _dollars(txn.refunded, txn.currency),
        "status_code": txn.status_code,
        "status_message": txn.status_message,
        "received_at": txn.received_at,
        "completed_at": txn.completed_at,
        "completes_at": txn.completes_at,
    }


_TIMES = ("received_at", "completed_at", "completes_at", "created_at", "valid_from", "valid_until")


def _flat_csv(row: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """``row`` with only ``columns``, times in ISO 8601 and ``None`` as empty."""
    flat: dict[str, Any] = {}
    for column in columns:
        value = row.get(column)
        flat[column] = _when(value) if column in _TIMES else ("" if value is None else value)
    return flat


_TRANSACTION_COLUMNS = (
    "id", "received_at", "operation", "status", "amount", "currency", "fees", "method",
    "caller_id", "caller_reference", "sender_id", "recipient_id", "instrument_id",
    "parent_id", "refunded", "status_code", "completed_at",
)  # fmt: skip


def _transaction_line(row: dict[str, Any]) -> str:
    return (
        f"{row['id']}  {_when(row['received_at'])}  {row['operation']:<12}  "
        f"{row['status']:<9}  USD {row['amount']:>10}  fee {row['fees']:>6}  "
        f"{row['sender_id']} → {row['recipient_id']}"
    )


@transactions_app.command("list", short_help="Transactions, newest first, with filters.")
def transactions_list(
    account: PartyFilter = None,
    instrument: Annotated[str | None, _only("ID", "Only those of this instrument.")] = None,
    operation: Annotated[
        str | None,
        _only("OPERATION", "Only Pay, Refund, SettleDebt, WriteOffDebt, FundPrepaid or Withdraw."),
    ] = None,
    status: Annotated[
        str | None, _only("STATUS", "Only Pending, Success, Failure, Reserved or Cancelled.")
    ] = None,
    since: Annotated[str | None, _only("DATE", "Received at or after DATE (UTC).")] = None,
    until: Annotated[str | None, _only("DATE", "Received before DATE (UTC).")] = None,
    limit: LimitOption = 50,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Transactions of every merchant, newest first; the options narrow them down."""
    wanted_operation = _choice(Operation, operation, "--operation")
    wanted_status = _choice(Status, status, "--status")
    start, end = _moment(since, "--since"), _moment(until, "--until")
    with open_directory(database) as directory:
        party_id = _party_id(directory, account)
        with directory.database.read() as conn:
            found = sql.list_transactions(
                conn,
                party_id=party_id,
                instrument_id=instrument,
                operation=wanted_operation,
                status=wanted_status,
                since=start,
                until=end,
                limit=limit,
            )
    _print_rows(
        as_json,
        as_csv,
        "transactions",
        [_transaction_json(t) for t in found],
        lambda row: _flat_csv(row, _TRANSACTION_COLUMNS),
        _transaction_line,
    )


@transactions_app.command("show", short_help="One transaction and its refunds.")
def transactions_show(
    transaction_id: Annotated[str, typer.Argument(metavar="ID", help="The transaction id.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """One transaction: every field, and the refunds made of it."""
    with open_directory(database) as directory, directory.database.read() as conn:
        txn = sql.load_transactions(conn, [transaction_id]).get(transaction_id)
        refunds = sql.refunds_of(conn, transaction_id) if txn is not None else []
    if txn is None:
        raise fail(f"no transaction has the id {transaction_id!r}")
    data = _transaction_json(txn) | {"refunds": [_transaction_json(r) for r in refunds]}
    lines = [f"{txn.operation.value} {txn.id}: USD {data['amount']} {txn.status.value}"]
    for name, value in data.items():
        if name in ("id", "refunds") or value in (None, ""):
            continue
        lines.append(f"  {name:<17} {_when(value) if name in _TIMES else value}")
    lines += ["refunds:", *(f"  {_transaction_line(_transaction_json(r))}" for r in refunds)]
    if not refunds:
        lines[-1] = "refunds: none"
    emit(as_json, data, lines)


# -- instruments ---------------------------------------------------------------------------


def _instrument_json(instrument: Instrument) -> dict[str, Any]:
    currency = instrument.currency
    return {
        "id": instrument.id,
        "kind": instrument.kind.value,
        "buyer_id": instrument.sender_id,
        "merchant_id": instrument.recipient_id,
        "currency": currency,
        "created_at": instrument.created_at,
        "valid_from": instrument.valid_from,
        "valid_until": instrument.valid_until,
        "funding_limit": _dollars(instrument.funding_limit, currency) or None,
        "funded_total": _dollars(instrument.funded_total, currency),
        "credit_limit": _dollars(instrument.credit_limit, currency) or None,
        "global_amount_limit": _dollars(instrument.global_amount_limit, currency) or None,
        "charged_total": _dollars(instrument.charged_total, currency),
        "payment_reason": instrument.payment_reason,
    }


_INSTRUMENT_COLUMNS = (
    "id", "kind", "buyer_id", "merchant_id", "currency", "created_at", "valid_until",
    "funding_limit", "funded_total", "credit_limit", "charged_total",
)  # fmt: skip


#: What ``instruments show`` prints, in this order (empty ones are left out).
_INSTRUMENT_SHOWN = (
    "buyer_id", "merchant_id", "currency", "created_at", "valid_from", "valid_until",
    "funding_limit", "funded_total", "credit_limit", "global_amount_limit", "charged_total",
    "payment_reason",
)  # fmt: skip


def _instrument_line(row: dict[str, Any]) -> str:
    limit = row["funding_limit"] if row["kind"] == "prepaid" else row["credit_limit"]
    return (
        f"{row['id']}  {row['kind']:<7}  {_when(row['created_at'])}  buyer {row['buyer_id']}  "
        f"merchant {row['merchant_id']}  limit {limit or '-'}  until "
        f"{_when(row['valid_until']) or '-'}"
    )


@instruments_app.command("list", short_help="Instruments, newest first.")
def instruments_list(
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            "-a",
            metavar="ID|EMAIL",
            help="Only those of this buyer or merchant.",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(metavar="KIND", help="Only prepaid or only credit instruments.")
    ] = None,
    limit: LimitOption = 50,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Prepaid and credit instruments, newest first: buyer, merchant, limits, validity."""
    wanted = _choice(InstrumentKind, kind, "--kind")
    with open_directory(database) as directory:
        party_id = _party_id(directory, account)
        with directory.database.read() as conn:
            found = sql.list_instruments(conn, party_id=party_id, kind=wanted, limit=limit)
    _print_rows(
        as_json,
        as_csv,
        "instruments",
        [_instrument_json(i) for i in found],
        lambda row: _flat_csv(row, _INSTRUMENT_COLUMNS),
        _instrument_line,
    )


def _token_json(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "kind": token.kind.value,
        "status": token.status.value,
        "caller_reference": token.caller_reference,
        "created_at": token.created_at,
    }


@instruments_app.command("show", short_help="One instrument: balance, tokens, transactions.")
def instruments_show(
    instrument_id: Annotated[str, typer.Argument(metavar="ID", help="The instrument id.")],
    recent: Annotated[
        int, typer.Option(min=0, metavar="N", help="Show its N latest transactions.")
    ] = 10,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """One instrument: its limits and validity, its balance (prepaid: what is left; credit:
    the debt), its tokens and its latest transactions."""
    with open_services(database) as services:
        with services.database.read() as conn:
            instrument = sql.load_instruments(conn, [instrument_id]).get(instrument_id)
            tokens = sql.tokens_of_instrument(conn, instrument_id)
            txns = sql.list_transactions(conn, instrument_id=instrument_id, limit=recent)
        if instrument is None:
            raise fail(f"no instrument has the id {instrument_id!r}")
        query = BalanceQuery(instrument.kind, instrument.recipient_id, instrument.id)
        balance = services.payments.balance(query)
    label = "available" if instrument.kind is InstrumentKind.prepaid else "debt"
    data = _instrument_json(instrument) | {
        "balance": {label: balance.main.plain(), "pending": balance.pending.plain()},
        "tokens": [_token_json(t) for t in tokens],
        "transactions": [_transaction_json(t) for t in txns],
    }
    emit(as_json, data, _instrument_lines(data, label))


def _instrument_lines(data: dict[str, Any], label: str) -> list[str]:
    lines = [f"{data['kind']} instrument {data['id']}"]
    for name in _INSTRUMENT_SHOWN:
        value = data[name]
        if value not in (None, ""):
            lines.append(f"  {name:<19} {_when(value) if name in _TIMES else value}")
    balance = data["balance"]
    lines.append(f"balance: {label} USD {balance[label]} (pending {balance['pending']})")
    lines.append("tokens:")
    lines += [
        f"  {t['id']}  {t['kind']:<14}  {t['status']:<8}  {t['caller_reference']}"
        for t in data["tokens"]
    ] or ["  (none)"]
    lines.append("latest transactions:")
    lines += [f"  {_transaction_line(t)}" for t in data["transactions"]] or ["  (none)"]
    return lines

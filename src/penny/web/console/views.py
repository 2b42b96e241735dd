"""What the account site's pages share: formatting money and times, reading the transaction
filters and the keyset cursor from a query string, and the rows a transaction list shows.

Pure: no database, no HTTP. Times are shown in UTC; amounts as ``$1,234.56``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, TypeVar
from urllib.parse import urlencode

from penny import epoch
from penny.api.resources import encode_position, paged
from penny.domain.model import Operation, Status, Transaction
from penny.money import Money
from penny.storage.console_sql import TransactionFilter

#: Transactions on one page of a list.
PAGE_SIZE: Final = 50
#: The dashboard's periods (days).
PERIODS: Final = (7, 30, 90)
DAY_US: Final = 86_400 * 1_000_000
T = TypeVar("T")

OPERATIONS: Final = tuple(op.value for op in Operation)
STATUSES: Final = tuple(status.value for status in Status)


def money(minor: int, currency: str = "USD") -> str:
    """``$1,234.56`` (a minus sign in front of a negative amount)."""
    plain = Money(abs(minor), currency).plain()
    whole, _, cents = plain.partition(".")
    grouped = f"{int(whole):,}"
    sign = "-" if minor < 0 else ""
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{sign}{symbol}{grouped}{'.' + cents if cents else ''}"


def when(micros: int | None) -> str:
    """``2026-12-07 14:05 UTC``, or an em dash for no time."""
    if micros is None:
        return "—"
    return epoch.second_of(micros).strftime("%Y-%m-%d %H:%M UTC")


def day(micros: int) -> str:
    return epoch.second_of(micros).strftime("%Y-%m-%d")


def short_day(micros: int) -> str:
    return epoch.second_of(micros).strftime("%d %b")


def _day_start(text: str) -> int | None:
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        return None
    return epoch.from_datetime(datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of a transaction list as the form shows them, and what they select."""

    values: dict[str, str]
    where: TransactionFilter
    errors: dict[str, str]

    def query(self, **more: str) -> str:
        """The filters (and ``more``) as a query string, for links and the CSV export."""
        kept = {k: v for k, v in {**self.values, **more}.items() if v}
        return urlencode(kept)


def read_filters(params: Mapping[str, str], caller_id: str) -> Filters:
    """The merchant's transaction filters: ``from``/``to`` (dates, ``to`` included),
    ``operation``, ``status``, ``instrument``, ``buyer`` (an account id), ``q`` (a transaction
    id or CallerReference)."""
    names = ("from", "to", "operation", "status", "instrument", "buyer", "q")
    values = {name: params.get(name, "").strip()[:128] for name in names}
    errors: dict[str, str] = {}
    since = until = None
    if values["from"]:
        since = _day_start(values["from"])
        if since is None:
            errors["from"] = "Enter a date as YYYY-MM-DD."
    if values["to"]:
        start = _day_start(values["to"])
        until = None if start is None else start + DAY_US
        if until is None:
            errors["to"] = "Enter a date as YYYY-MM-DD."
    operation = Operation(values["operation"]) if values["operation"] in OPERATIONS else None
    status = Status(values["status"]) if values["status"] in STATUSES else None
    values["operation"] = operation.value if operation else ""
    values["status"] = status.value if status else ""
    where = TransactionFilter(
        caller_id=caller_id,
        since=since,
        until=until,
        operation=operation,
        status=status,
        search=values["q"] or None,
        instrument_id=values["instrument"] or None,
        sender_id=values["buyer"] or None,
    )
    return Filters(values, where, errors)


def received_position(txn: Transaction) -> tuple[int, str]:
    """Where a transaction stands in a list newest first (by ``received_at``, then id)."""
    return txn.received_at, txn.id


def page_of(
    rows: Sequence[T], position: Callable[[T], tuple[int, str]], size: int = PAGE_SIZE
) -> tuple[list[T], str | None]:
    """A keyset page read with ``size + 1`` rows (newest first by ``position``: a time and an
    id): the rows to show and the cursor of the next page (``None`` on the last page), the
    JSON API's cursor format, which :func:`decode_cursor` reads back."""
    kept, _more, cursor = paged(rows, size, lambda row: encode_position(*position(row)))
    return list(kept), cursor


def decode_cursor(text: str) -> tuple[int, str] | None:
    """The ``(received_at, id)`` a page continues after; ``None`` for a cursor that is not one
    of ours (the list then starts at the newest)."""
    if not text or len(text) > 128:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    at, _, txn_id = raw.partition(":")
    if not at.isdigit() or not txn_id or len(txn_id) > 64:
        return None
    return int(at), txn_id


@dataclass(frozen=True, slots=True)
class TransactionRow:
    """One line of a transaction list, formatted."""

    id: str
    received: str
    operation: str
    status: str
    amount: str
    fees: str
    instrument: str
    reference: str


def row_of(txn: Transaction) -> TransactionRow:
    return TransactionRow(
        id=txn.id,
        received=when(txn.received_at),
        operation=txn.operation.value,
        status=txn.status.value,
        amount=money(txn.amount, txn.currency),
        fees=money(txn.fees, txn.currency),
        instrument=txn.instrument_id or "",
        reference=txn.caller_reference,
    )


CSV_COLUMNS: Final = (
    "transaction_id",
    "received_at",
    "completed_at",
    "operation",
    "status",
    "status_code",
    "amount",
    "fees",
    "refunded",
    "currency",
    "instrument_id",
    "sender_token_id",
    "parent_id",
    "caller_reference",
)


#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """A text cell a spreadsheet will not run: one starting like a formula gets a leading
    ``'`` (shown as text, the rest unchanged)."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def csv_fields(txn: Transaction) -> tuple[str, ...]:
    """One CSV line's fields: plain amounts (``12.34``), ISO 8601 times in UTC; the
    merchant-chosen CallerReference through :func:`csv_text`."""

    def iso(micros: int | None) -> str:
        return "" if micros is None else epoch.second_of(micros).isoformat()

    return (
        txn.id,
        iso(txn.received_at),
        iso(txn.completed_at),
        txn.operation.value,
        txn.status.value,
        str(txn.status_code),
        Money(txn.amount, txn.currency).plain(),
        Money(txn.fees, txn.currency).plain(),
        Money(txn.refunded, txn.currency).plain(),
        txn.currency,
        txn.instrument_id or "",
        txn.sender_token_id or "",
        txn.parent_id or "",
        csv_text(txn.caller_reference),
    )

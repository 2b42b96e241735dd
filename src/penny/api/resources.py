"""The JSON API's resources: validate (a decoded body → the payments service's request, or
query parameters → a query) and render (a result → a response model).

Money-moving bodies become the same typed requests the FPS actions build
(:mod:`penny.fps.actions.payments`), field for field, so a request through either door has the
same fingerprint: ``description`` is FPS's CallerDescription, ``sender_description`` its
SenderDescription, and the request's CallerReference is its ``Idempotency-Key``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from penny import epoch
from penny.api import models as m
from penny.api.errors import ApiFault, invalid_parameter
from penny.domain.model import FeePayer, Operation, Status, Token, Transaction
from penny.money import Money
from penny.services.payment_queries import PaymentQueries, TwoBalances
from penny.services.payments import (
    CancelRequest,
    FundPrepaidRequest,
    PaymentRequest,
    PayRequest,
    RefundRequest,
    ReserveRequest,
    SettleDebtRequest,
    SettleRequest,
    WriteOffDebtRequest,
)
from penny.storage import payments_sql as sql

T = TypeVar("T")
Q = TypeVar("Q")
L = TypeVar("L")

#: A page of transactions holds this many unless ``limit`` says otherwise (1 to MAX_LIMIT).
DEFAULT_LIMIT: Final = 10
MAX_LIMIT: Final = 100

# -- validate: bodies → requests -------------------------------------------------------------


def money(amount: m.Amount) -> Money:
    return Money(amount.amount, amount.currency)


def pay(body: m.PaymentCreate, caller_id: str, reference: str) -> PaymentRequest | ApiFault:
    fees = _marketplace(body)
    if isinstance(fees, ApiFault):
        return fees
    return PayRequest(caller_id, reference, **_charge(body), **fees)


def _charge(body: m.PaymentCreate | m.ReserveCreate) -> dict[str, Any]:
    """The fields Pay and Reserve share (Reserve is Pay's request plus a timeout)."""
    return {
        "sender_token_id": body.sender_token,
        "amount": money(body.amount),
        "sender_description": body.sender_description,
        "caller_description": body.description,
        "recipient_token_id": body.recipient_token,
    }


def _marketplace(body: m.PaymentCreate | m.ReserveCreate) -> dict[str, Any] | ApiFault:
    """A marketplace Pay's or Reserve's fee and who bears Penny's (FPS's MarketplaceFixedFee,
    MarketplaceVariableFee, ChargeFeeTo)."""
    if body.charge_fee_to == "caller" and body.recipient_token is None:
        return invalid_parameter(
            "charge_fee_to", "charge_fee_to=caller needs a recipient_token: you are the recipient."
        )
    fee = body.marketplace_fee
    fixed = None if fee is None or fee.fixed is None else money(fee.fixed)
    return {
        "marketplace_fixed_fee": 0 if fixed is None else fixed.minor,
        "marketplace_variable_fee": 0 if fee is None else fee.variable_bps,
        "charge_fee_to": None if body.charge_fee_to is None else FeePayer[body.charge_fee_to],
    }


def reserve(body: m.ReserveCreate, caller_id: str, reference: str) -> PaymentRequest | ApiFault:
    fees = _marketplace(body)
    if isinstance(fees, ApiFault):
        return fees
    return ReserveRequest(
        caller_id, reference, **_charge(body), **fees, timeout_minutes=body.timeout_minutes
    )


def settle_reserve(
    body: m.ReserveSettle, caller_id: str, reference: str, reserve_id: str
) -> PaymentRequest:
    """FPS's Settle, keyed by the Idempotency-Key (FPS's own Settle derives its key from what
    it settles; a reserve is settled once either way: docs/decisions.md, #17 reserves)."""
    amount = None if body.amount is None else money(body.amount)
    return SettleRequest(caller_id, reference, reserve_id, amount)


def cancel_reserve(
    body: m.ReserveCancel, caller_id: str, reference: str, reserve_id: str
) -> PaymentRequest:
    """FPS's Cancel, keyed by the Idempotency-Key (see :func:`settle_reserve`)."""
    return CancelRequest(caller_id, reference, reserve_id, body.description)


def fund(body: m.FundingCreate, caller_id: str, reference: str) -> PaymentRequest:
    return FundPrepaidRequest(
        caller_id=caller_id,
        caller_reference=reference,
        funding_token_id=body.funding_token,
        instrument_id=body.prepaid_instrument,
        amount=money(body.amount),
        sender_description=body.sender_description,
        caller_description=body.description,
    )


def settle(body: m.SettlementCreate, caller_id: str, reference: str) -> PaymentRequest:
    return SettleDebtRequest(
        caller_id=caller_id,
        caller_reference=reference,
        settlement_token_id=body.settlement_token,
        instrument_id=body.credit_instrument,
        amount=money(body.amount),
        sender_description=body.sender_description,
        caller_description=body.description,
    )


def write_off(body: m.WriteOffCreate, caller_id: str, reference: str) -> PaymentRequest:
    return WriteOffDebtRequest(
        caller_id=caller_id,
        caller_reference=reference,
        instrument_id=body.credit_instrument,
        amount=money(body.amount),
        caller_description=body.description,
    )


def refund(body: m.RefundCreate, caller_id: str, reference: str) -> PaymentRequest:
    return RefundRequest(
        caller_id=caller_id,
        caller_reference=reference,
        transaction_id=body.transaction,
        amount=None if body.amount is None else money(body.amount),
        caller_description=body.description,
        refund_marketplace_fee=body.refund_marketplace_fee,
    )


# -- render: results → models ----------------------------------------------------------------


def amount_of(minor: int, currency: str) -> m.Amount:
    return m.Amount(minor, currency)  # type: ignore[arg-type]  # Penny's currencies: USD


def transaction_out(txn: Transaction) -> m.Transaction:
    completed = None if txn.completed_at is None else epoch.to_datetime(txn.completed_at)
    return m.Transaction(
        id=txn.id,
        operation=txn.operation.name,  # type: ignore[arg-type]  # the Literal lists the names
        status=txn.status.name,  # type: ignore[arg-type]
        status_code=txn.status_code.value,
        amount=amount_of(txn.amount, txn.currency),
        fees=amount_of(txn.fees, txn.currency),
        refunded=amount_of(txn.refunded, txn.currency),
        caller_reference=txn.caller_reference,
        sender_token=txn.sender_token_id,
        instrument=txn.instrument_id,
        parent_transaction=txn.parent_id,
        description=txn.caller_description,
        sender_description=txn.sender_description,
        created_at=epoch.to_datetime(txn.received_at),
        completed_at=completed,
    )


def token_out(token: Token) -> m.Token:
    cancelled = None if token.cancelled_at is None else epoch.to_datetime(token.cancelled_at)
    return m.Token(
        id=token.id,
        kind=token.kind.value,
        instrument=token.instrument_id,
        status=token.status.name,  # type: ignore[arg-type]
        caller_reference=token.caller_reference,
        created_at=epoch.to_datetime(token.created_at),
        cancelled_at=cancelled,
    )


def instrument_balance(kind: str, instrument_id: str, found: TwoBalances) -> m.InstrumentBalance:
    return m.InstrumentBalance(
        object=kind,  # type: ignore[arg-type]  # prepaid_balance | debt_balance (routes)
        instrument=instrument_id,
        balance=amount_of(found.main.minor, found.main.currency),
        pending=amount_of(found.pending.minor, found.pending.currency),
    )


def merchant_balance(kind: str, found: TwoBalances) -> m.MerchantBalance:
    return m.MerchantBalance(
        object=kind,  # type: ignore[arg-type]  # prepaid_liability | outstanding_debt (routes)
        balance=amount_of(found.main.minor, found.main.currency),
        pending=amount_of(found.pending.minor, found.pending.currency),
    )


# -- queries (blocking: the front runs them in a worker thread) --------------------------------


def get_transaction(payments: PaymentQueries, caller_id: str, transaction_id: str) -> m.Transaction:
    return transaction_out(payments.transaction(caller_id, transaction_id))


def get_token(payments: PaymentQueries, caller_id: str, token_id: str) -> m.Token:
    return token_out(payments.token_by_caller(caller_id, token_id=token_id))


def encode_cursor(txn: Transaction) -> str:
    return encode_position(txn.received_at, txn.id)


def encode_position(at: int, last_id: str) -> str:
    """A page's cursor: the time and id of its last item."""
    raw = f"{at}:{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str] | ApiFault:
    fault = invalid_parameter("starting_after", "The cursor is not one this API gave.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return fault
    at, _, last_id = raw.partition(":")
    if not at.isdigit() or not last_id or len(at) > 19 or not last_id.replace("_", "").isalnum():
        return fault
    return int(at), last_id


def _choice(query: Mapping[str, str], name: str, enum: type[Operation] | type[Status]) -> object:
    value = query.get(name)
    if value is None:
        return None
    found = enum.__members__.get(value)
    if found is None:
        choices = ", ".join(enum.__members__)
        return invalid_parameter(name, f"{name} must be one of: {choices}.")
    return found


def _seconds(query: Mapping[str, str], name: str) -> int | ApiFault | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 11:
        return invalid_parameter(name, f"{name} is a time in whole seconds since the epoch.")
    return epoch.from_seconds(int(value))


#: The query parameters GET /v1/transactions takes.
LIST_PARAMETERS: Final = (
    "limit",
    "starting_after",
    "operation",
    "status",
    "created_gte",
    "created_lt",
)


def page_limit(query: Mapping[str, str]) -> int | ApiFault:
    """A list's ``limit`` parameter (DEFAULT_LIMIT when absent)."""
    text = query.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text[:4]) <= MAX_LIMIT or len(text) > 3:
        return invalid_parameter("limit", f"limit is a whole number from 1 to {MAX_LIMIT}.")
    return int(text)


@dataclass(frozen=True, slots=True)
class Filters:
    """GET /v1/transactions's query, validated."""

    limit: int
    after: tuple[int, str] | None
    operation: Operation | None
    status: Status | None
    since: int | None
    until: int | None


def unknown_parameter(query: Mapping[str, str], known: Collection[str]) -> ApiFault | None:
    """The first query parameter not in ``known``, as a fault (None when all are known)."""
    for name in query:
        if name not in known:
            return invalid_parameter(name, f"Unknown parameter {name!r}.")
    return None


def page_start(query: Mapping[str, str]) -> tuple[int, tuple[int, str] | None] | ApiFault:
    """A list's ``limit`` and decoded ``starting_after`` (None: the first page), or the first
    of the two at fault."""
    limit = page_limit(query)
    if isinstance(limit, ApiFault):
        return limit
    after = None if "starting_after" not in query else decode_cursor(query["starting_after"])
    if isinstance(after, ApiFault):
        return after
    return limit, after


def filters(query: Mapping[str, str]) -> Filters | ApiFault:
    """The query parameters of a list (see LIST_PARAMETERS), or the first one at fault."""
    start = unknown_parameter(query, LIST_PARAMETERS) or page_start(query)
    if isinstance(start, ApiFault):
        return start
    operation = _choice(query, "operation", Operation)
    status = _choice(query, "status", Status)
    since, until = _seconds(query, "created_gte"), _seconds(query, "created_lt")
    for value in (operation, status, since, until):
        if isinstance(value, ApiFault):
            return value
    return Filters(*start, operation, status, since, until)  # type: ignore[arg-type]


def paged(
    page: Sequence[T], limit: int, cursor_of: Callable[[T], str]
) -> tuple[Sequence[T], bool, str | None]:
    """A page read with ``limit + 1`` rows: the rows to show, whether there are more, and the
    cursor of the next page."""
    more = len(page) > limit
    return page[:limit], more, cursor_of(page[limit - 1]) if more else None


def listing(
    parse: Callable[[Mapping[str, str]], Q | ApiFault],
    read: Callable[[PaymentQueries, str, Q], L],
) -> Callable[[PaymentQueries, str, tuple[str, ...], Mapping[str, str]], L | ApiFault]:
    """A list route's query: its parameters checked by ``parse`` (the first one at fault is
    the answer), then its page ``read`` for them and the caller."""

    def answer(
        payments: PaymentQueries, caller_id: str, _ids: tuple[str, ...], query: Mapping[str, str]
    ) -> L | ApiFault:
        chosen = parse(query)
        return chosen if isinstance(chosen, ApiFault) else read(payments, caller_id, chosen)

    return answer


def list_transactions(
    payments: PaymentQueries, caller_id: str, chosen: Filters
) -> m.TransactionList:
    """A page of the caller's transactions, newest first, filtered (see LIST_PARAMETERS)."""
    with payments.database.read() as conn:
        page = sql.page_of_transactions(
            conn,
            caller_id,
            after=chosen.after,
            operation=chosen.operation,
            status=chosen.status,
            since=chosen.since,
            until=chosen.until,
            limit=chosen.limit + 1,
        )
    kept, more, cursor = paged(page, chosen.limit, encode_cursor)
    data = [transaction_out(txn) for txn in kept]
    return m.TransactionList(data=data, has_more=more, next_cursor=cursor)


def prepaid_liability(payments: PaymentQueries, caller_id: str) -> m.MerchantBalance:
    return merchant_balance("prepaid_liability", payments.total_prepaid_liability(caller_id))


def outstanding_debt(payments: PaymentQueries, caller_id: str) -> m.MerchantBalance:
    return merchant_balance("outstanding_debt", payments.outstanding_debt(caller_id))

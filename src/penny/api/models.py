"""The JSON API's bodies: msgspec Structs, decoded and validated in one pass and encoded
without an intermediate dict; their JSON Schemas are the OpenAPI document's components.

Money is ``{"amount": <integer minor units>, "currency": "USD"}``; never a float (a float in
a request is refused by the decoder). Times are RFC 3339 UTC strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from msgspec import Meta, Struct

from penny.money import MAX_MINOR_UNITS

#: FPS descriptions are at most 160 characters; so are ours.
MAX_DESCRIPTION: Final = 160

Id = Annotated[str, Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_-]+$")]
Description = Annotated[str, Meta(max_length=MAX_DESCRIPTION, pattern="^[^\\x00]*$")]
Minor = Annotated[int, Meta(ge=0, le=MAX_MINOR_UNITS)]
Operation = Literal[
    "pay",
    "refund",
    "settle_debt",
    "write_off_debt",
    "fund_prepaid",
    "withdraw",
    "reserve",
    "settle",
]
Status = Literal["pending", "success", "failure", "reserved", "cancelled"]


class Amount(Struct, forbid_unknown_fields=True):
    """An amount of money: integer minor units (cents) and the ISO 4217 currency."""

    amount: Minor
    currency: Literal["USD"]


class PaymentCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """Pay: charge a prepaid sender token (spends its balance) or a postpaid one (adds debt)."""

    sender_token: Id
    amount: Amount
    recipient_token: Id | None = None
    description: Description = ""
    sender_description: Description = ""
    #: A marketplace Pay's fee (needs ``recipient_token``): booked to the caller (#19).
    marketplace_fee: MarketplaceFee | None = None
    #: Who bears Penny's fee: ``recipient`` (the default) or ``caller`` (needs
    #: ``recipient_token``).
    charge_fee_to: Literal["recipient", "caller"] | None = None


class MarketplaceFee(Struct, forbid_unknown_fields=True, kw_only=True):
    """A marketplace Pay's or Reserve's fee for the caller: a ``fixed`` amount plus
    ``variable_bps`` basis points (hundredths of a percent, 0 to 10000) of the amount."""

    fixed: Amount | None = None
    variable_bps: Annotated[int, Meta(ge=0, le=10_000)] = 0


class ReserveCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """Reserve: hold an amount on a sender token's instrument, to settle (all or part) or
    cancel later; the hold expires after ``timeout_minutes`` (Penny's default otherwise)."""

    sender_token: Id
    amount: Amount
    recipient_token: Id | None = None
    description: Description = ""
    sender_description: Description = ""
    timeout_minutes: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    #: A marketplace Reserve's fee (needs ``recipient_token``): held with the amount, taken
    #: pro rata by a partial Settle.
    marketplace_fee: MarketplaceFee | None = None
    #: Who bears Penny's fee: ``recipient`` (the default) or ``caller`` (needs
    #: ``recipient_token``).
    charge_fee_to: Literal["recipient", "caller"] | None = None


class ReserveSettle(Struct, forbid_unknown_fields=True, kw_only=True):
    """Settle a reserve: charge all of it (no amount) or a part (the rest is released). The
    answer is the new ``settle`` transaction (its parent: the reserve)."""

    amount: Amount | None = None


class ReserveCancel(Struct, forbid_unknown_fields=True, kw_only=True):
    """Cancel a reserve: release the hold. The answer is the reserve, now ``cancelled``."""

    description: Description = ""


class FundingCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """FundPrepaid: add value to a prepaid instrument with its funding token."""

    funding_token: Id
    prepaid_instrument: Id
    amount: Amount
    description: Description = ""
    sender_description: Description = ""


class SettlementCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """SettleDebt: the buyer pays down a credit instrument's debt with its settlement token."""

    settlement_token: Id
    credit_instrument: Id
    amount: Amount
    description: Description = ""
    sender_description: Description = ""


class WriteOffCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """WriteOffDebt: the merchant forgives part of a credit instrument's debt."""

    credit_instrument: Id
    amount: Amount
    description: Description = ""


class RefundCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """Refund a Pay, in full (no amount) or in part."""

    transaction: Id
    amount: Amount | None = None
    description: Description = ""
    #: A marketplace Pay's refund: the caller gives back its fee's share too (FPS's
    #: MarketplaceRefundPolicy=MasterAndMarketplaceTxn); false: it keeps its fee.
    refund_marketplace_fee: bool = False


class Transaction(Struct, kw_only=True):
    """A transaction: a payment, funding, settlement, write-off, refund or withdrawal."""

    id: str
    object: Literal["transaction"] = "transaction"
    operation: Operation
    status: Status
    status_code: str
    amount: Amount
    fees: Amount
    refunded: Amount
    caller_reference: str
    sender_token: str | None
    instrument: str | None
    parent_transaction: str | None
    description: str
    sender_description: str
    created_at: datetime
    completed_at: datetime | None


class TransactionList(Struct, kw_only=True):
    """A page of transactions, newest first; ``next_cursor`` fetches the next page."""

    object: Literal["list"] = "list"
    data: list[Transaction]
    has_more: bool
    next_cursor: str | None


class Token(Struct, kw_only=True):
    """A sender, funding or settlement token of an instrument."""

    id: str
    object: Literal["token"] = "token"
    kind: Literal[
        "prepaid_sender",
        "funding",
        "credit_sender",
        "settlement",
        "single_use",
        "multi_use",
        "recurring",
    ]
    instrument: str
    status: Literal["active", "inactive"]
    caller_reference: str
    created_at: datetime
    cancelled_at: datetime | None


class InstrumentBalance(Struct, kw_only=True):
    """A prepaid instrument's balance (``balance`` available, ``pending`` funding on its way)
    or a credit instrument's debt (``balance`` owed, ``pending`` settlements on their way)."""

    object: Literal["prepaid_balance", "debt_balance"]
    instrument: str
    balance: Amount
    pending: Amount


class MerchantBalance(Struct, kw_only=True):
    """The merchant's total prepaid liability (value sold, not yet spent) or its outstanding
    debt (owed to it over all credit instruments), and the pending part."""

    object: Literal["prepaid_liability", "outstanding_debt"]
    balance: Amount
    pending: Amount


ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "payment_error",
    "not_found_error",
    "conflict_error",
    "idempotency_error",
    "unprocessable_error",
    "rate_limit_error",
    "api_error",
]


class ErrorDetail(Struct, kw_only=True):
    """What went wrong: ``type`` (its kind), ``code`` (stable, for programs), ``message`` (for
    people), ``param`` (the field at fault, if one) and ``request_id`` (for the logs)."""

    type: ErrorType
    code: str
    message: str
    param: str | None
    request_id: str


class Error(Struct):
    """Every refusal of the JSON API."""

    error: ErrorDetail


# -- authorization sessions and instruments (#17, second slice) --------------------------------

Reference = Annotated[str, Meta(min_length=1, max_length=128, pattern="^[\\x21-\\x7e]+$")]
MethodCode = Literal["ABT", "ACH", "CC"]


class AuthorizationSessionCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """Ask a buyer to authorize a prepaid (SetupPrepaid) or postpaid (SetupPostpaid) instrument
    on Penny's hosted pages. ``funding_amount`` is prepaid's and required for it;
    ``credit_limit`` and ``global_amount_limit`` are postpaid's and required for it, with the
    optional ``min_charge``/``max_charge``. The caller references default to the session id
    followed by ``-sender`` and ``-funding`` or ``-settlement``. Times are epoch seconds."""

    kind: Literal["prepaid", "postpaid"]
    return_url: Annotated[str, Meta(min_length=1, max_length=2048)]
    funding_amount: Amount | None = None
    credit_limit: Amount | None = None
    global_amount_limit: Amount | None = None
    min_charge: Amount | None = None
    max_charge: Amount | None = None
    caller_reference_sender: Reference | None = None
    caller_reference_funding: Reference | None = None
    caller_reference_settlement: Reference | None = None
    payment_reason: Annotated[str, Meta(max_length=256)] = ""
    website_description: Annotated[str, Meta(max_length=256)] = ""
    payment_methods: list[MethodCode] | None = None
    valid_from: Annotated[int, Meta(ge=0, le=99_999_999_999)] | None = None
    valid_until: Annotated[int, Meta(ge=0, le=99_999_999_999)] | None = None


class AuthorizationSession(Struct, kw_only=True):
    """A hosted-pages authorization: send the buyer to ``url``; once they have completed the
    pages, ``status`` is ``complete`` and the instrument and token ids are filled."""

    id: str
    object: Literal["authorization_session"] = "authorization_session"
    kind: Literal["prepaid", "postpaid"]
    status: Literal["open", "complete"]
    url: str
    return_url: str
    caller_reference_sender: str
    caller_reference_funding: str | None
    caller_reference_settlement: str | None
    instrument: str | None
    sender_token: str | None
    funding_token: str | None
    settlement_token: str | None
    created_at: datetime


class Instrument(Struct, kw_only=True):
    """A prepaid instrument (``balance`` available, ``funded`` in total, up to
    ``funding_limit``) or a credit instrument (``debt`` owed, up to ``credit_limit``;
    ``charged`` in total, up to ``global_amount_limit``), its validity and whether it is
    valid now."""

    id: str
    object: Literal["instrument"] = "instrument"
    kind: Literal["prepaid", "credit"]
    buyer: str
    merchant: str
    balance: Amount | None
    funded: Amount | None
    funding_limit: Amount | None
    debt: Amount | None
    credit_limit: Amount | None
    charged: Amount | None
    global_amount_limit: Amount | None
    valid_from: datetime
    valid_until: datetime | None
    valid: bool
    payment_reason: str
    created_at: datetime


class InstrumentList(Struct, kw_only=True):
    """A page of instruments, newest first; ``next_cursor`` fetches the next page."""

    object: Literal["list"] = "list"
    data: list[Instrument]
    has_more: bool
    next_cursor: str | None


# -- events and webhook endpoints (issue #17, webhooks) ---------------------------------------

#: Every event type: ``<resource>.<status>`` for each kind of transaction and status (a
#: write-off, say, is never pending: those Penny never emits), and ``token.cancelled``.
EventType = Literal[
    "payment.pending",
    "payment.succeeded",
    "payment.failed",
    "payment.reserved",
    "payment.cancelled",
    "funding.pending",
    "funding.succeeded",
    "funding.failed",
    "funding.reserved",
    "funding.cancelled",
    "settlement.pending",
    "settlement.succeeded",
    "settlement.failed",
    "settlement.reserved",
    "settlement.cancelled",
    "write_off.pending",
    "write_off.succeeded",
    "write_off.failed",
    "write_off.reserved",
    "write_off.cancelled",
    "refund.pending",
    "refund.succeeded",
    "refund.failed",
    "refund.reserved",
    "refund.cancelled",
    "withdrawal.pending",
    "withdrawal.succeeded",
    "withdrawal.failed",
    "withdrawal.reserved",
    "withdrawal.cancelled",
    "reserve.pending",
    "reserve.succeeded",
    "reserve.failed",
    "reserve.reserved",
    "reserve.cancelled",
    "reserve_settlement.pending",
    "reserve_settlement.succeeded",
    "reserve_settlement.failed",
    "reserve_settlement.reserved",
    "reserve_settlement.cancelled",
    "token.cancelled",
]
EventData = Annotated[
    Any,
    Meta(
        description="The transaction or token the event is about, as /v1 renders it.",
        extra_json_schema={
            "oneOf": [
                {"$ref": "#/components/schemas/Transaction"},
                {"$ref": "#/components/schemas/Token"},
            ]
        },
    ),
]
#: An absolute http(s) URL in printable ASCII (percent-encode anything else).
WebhookUrl = Annotated[str, Meta(min_length=8, max_length=2048, pattern="^https?://[!-~]+$")]


class Event(Struct, kw_only=True):
    """Something that happened to a transaction or token; the body POSTed to webhook endpoints."""

    id: str
    object: Literal["event"] = "event"
    type: EventType
    created_at: datetime
    data: EventData


class EventList(Struct, kw_only=True):
    """A page of events, newest first; ``next_cursor`` fetches the next page."""

    object: Literal["list"] = "list"
    data: list[Event]
    has_more: bool
    next_cursor: str | None


class WebhookEndpointCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """Register a URL to receive events, signed with the Standard Webhooks scheme; the answer
    carries the endpoint's ``whsec_`` secret, the only time it is shown."""

    url: WebhookUrl
    enabled_events: list[EventType] = []
    description: Description = ""
    enabled: bool = True


class WebhookEndpoint(Struct, kw_only=True):
    """A merchant's webhook endpoint (``enabled_events`` empty: every event type). ``secret``
    is shown once, when it is created (or by ``penny webhooks rotate-secret``); else null."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    enabled_events: list[EventType]
    enabled: bool
    description: str
    created_at: datetime
    secret: str | None = None
    deleted: bool = False


class WebhookEndpointList(Struct, kw_only=True):
    """Every webhook endpoint of the merchant, oldest first."""

    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]
    has_more: bool
    next_cursor: str | None


class WebhookDelivery(Struct, kw_only=True):
    """An event's delivery to one endpoint: its state, attempts and the last one's outcome."""

    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event: str
    endpoint: str
    url: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_http_status: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class WebhookDeliveryList(Struct, kw_only=True):
    """The deliveries of one event, one per endpoint that takes its type."""

    object: Literal["list"] = "list"
    data: list[WebhookDelivery]
    has_more: bool
    next_cursor: str | None

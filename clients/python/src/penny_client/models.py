"""The JSON API's objects as typed dictionaries (what ``/v1`` answers, field for field).

Money is ``{"amount": <integer minor units>, "currency": "USD"}``, never a float; times are
RFC 3339 UTC strings.
"""

from __future__ import annotations

from typing import Generic, Literal, TypedDict, TypeVar

Item = TypeVar("Item")


class Amount(TypedDict):
    amount: int
    currency: str


class Transaction(TypedDict):
    id: str
    object: Literal["transaction"]
    #: pay, refund, settle_debt, write_off_debt, fund_prepaid, withdraw, … (the server's list
    #: grows with its operations, so this is not a closed Literal).
    operation: str
    status: Literal["pending", "success", "failure", "reserved", "cancelled"]
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
    created_at: str
    completed_at: str | None


class Page(TypedDict, Generic[Item]):
    """One page of a list: its items, whether more follow, and the cursor of the next."""

    object: Literal["list"]
    data: list[Item]
    has_more: bool
    next_cursor: str | None


class TransactionList(Page[Transaction]):
    pass


class Token(TypedDict):
    id: str
    object: Literal["token"]
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
    created_at: str
    cancelled_at: str | None


class InstrumentBalance(TypedDict):
    object: Literal["prepaid_balance", "debt_balance"]
    instrument: str
    balance: Amount
    pending: Amount


class MerchantBalance(TypedDict):
    object: Literal["prepaid_liability", "outstanding_debt"]
    balance: Amount
    pending: Amount


class AuthorizationSession(TypedDict):
    id: str
    object: Literal["authorization_session"]
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
    created_at: str


class Instrument(TypedDict):
    id: str
    object: Literal["instrument"]
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
    valid_from: str
    valid_until: str | None
    valid: bool
    payment_reason: str
    created_at: str


class InstrumentList(Page[Instrument]):
    pass

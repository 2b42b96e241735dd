"""Which request field a domain refusal is about, per operation: the ``param`` of the JSON
error object for refusals of the one table (:mod:`penny.domain.errors`).

A refusal is about a *role* (the amount, the token charged, the instrument, the original
transaction, the recipient token); each operation names the body field that plays it. A role an
operation has no field for (a write-off has no token) leaves ``param`` empty, as do refusals
about no one field (a GateKeeper rule, a busy store).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from penny.domain.errors import Refusal

Role = Literal["amount", "token", "instrument", "transaction", "recipient", "key"]

#: Each refusal about one field, and its role.
ROLES: Final[Mapping[Refusal, Role]] = {
    Refusal.invalid_amount: "amount",
    Refusal.amount_out_of_range: "amount",
    Refusal.invalid_currency: "amount",
    Refusal.insufficient_balance: "amount",
    Refusal.exceeds_instrument_limits: "amount",
    Refusal.amount_below_minimum: "amount",
    Refusal.amount_above_maximum: "amount",
    Refusal.funding_limit_exceeded: "amount",
    Refusal.settle_exceeds_debt: "amount",
    Refusal.refund_exceeds_original: "amount",
    Refusal.settle_exceeds_reserve: "amount",
    Refusal.unknown_token: "token",
    Refusal.token_not_active: "token",
    Refusal.wrong_token_type: "token",
    Refusal.invalid_token_type: "token",
    Refusal.token_used_already: "token",
    Refusal.unknown_instrument: "instrument",
    Refusal.instrument_access_denied: "instrument",
    Refusal.instrument_not_yet_valid: "instrument",
    Refusal.instrument_expired: "instrument",
    Refusal.token_instrument_mismatch: "instrument",
    Refusal.unknown_transaction: "transaction",
    Refusal.not_refundable: "transaction",
    Refusal.fully_refunded: "transaction",
    Refusal.original_not_complete: "transaction",
    Refusal.original_failed: "transaction",
    Refusal.unknown_recipient_token: "recipient",
    Refusal.recipient_token_not_active: "recipient",
    Refusal.duplicate_request: "key",
}

_KEY: Final = "Idempotency-Key"
#: Per operation id: the field that plays each role.
FIELDS: Final[Mapping[str, Mapping[Role, str]]] = {
    "createPayment": {
        "amount": "amount",
        "token": "sender_token",
        "instrument": "sender_token",  # a Pay names its instrument through the token
        "recipient": "recipient_token",
        "key": _KEY,
    },
    "createFunding": {
        "amount": "amount",
        "token": "funding_token",
        "instrument": "prepaid_instrument",
        "key": _KEY,
    },
    "createSettlement": {
        "amount": "amount",
        "token": "settlement_token",
        "instrument": "credit_instrument",
        "key": _KEY,
    },
    "createWriteOff": {"amount": "amount", "instrument": "credit_instrument", "key": _KEY},
    "createRefund": {"amount": "amount", "transaction": "transaction", "key": _KEY},
    "createReserve": {
        "amount": "amount",
        "token": "sender_token",
        "instrument": "sender_token",
        "recipient": "recipient_token",
        "key": _KEY,
    },
    "settleReserve": {"amount": "amount", "key": _KEY},
    "cancelReserve": {"key": _KEY},
}


def param_of(operation_id: str, refusal: Refusal) -> str | None:
    """The field of ``operation_id``'s body a refusal is about, if one."""
    role = ROLES.get(refusal)
    if role is None:
        return None
    return FIELDS.get(operation_id, {}).get(role)

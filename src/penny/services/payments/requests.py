"""What callers ask the payments service: the typed requests, and what a retry must repeat.

Every money-moving request is a :class:`PaymentRequest`: it names its caller and carries the
caller's ``CallerReference``, the key that makes it idempotent. Each operation's module
(:mod:`.pay`, :mod:`.fund`, …) defines its own request type as a subclass, and
:func:`fingerprint` tells a retry (same content) from a different request with a reused key.

The instrument set-ups (:class:`SetupPrepaid`, :class:`SetupPostpaid`) are what the hosted
pipelines do once a buyer agrees; they are keyed by their two caller references.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any

from penny.domain.errors import PaymentsError
from penny.domain.model import (
    AmountType,
    Instrument,
    Token,
    TokenKind,
    TokenTerms,
    Transaction,
    UsageLimitTerm,
)
from penny.money import Money


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A money-moving request: the caller and its idempotency key (``CallerReference``)."""

    caller_id: str
    caller_reference: str


Result = Transaction | PaymentsError


_NAMES: dict[type[PaymentRequest], tuple[str, ...]] = {}
#: ``json.dumps(..., sort_keys=True, separators=(",", ":"))``, with its encoder made once
#: (``json.dumps`` with options builds a new one per call).
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _names_of(request_type: type[PaymentRequest]) -> tuple[str, ...]:
    """The fields a fingerprint covers: all but the caller reference (cached per type)."""
    names = _NAMES.get(request_type)
    if names is None:
        names = tuple(f.name for f in fields(request_type) if f.name != "caller_reference")
        _NAMES[request_type] = names
    return names


def fingerprint(request: PaymentRequest) -> str:
    """What a retry must repeat exactly: every field but the caller reference.

    The text hashed is the request's type name and its fields as sorted JSON, exactly as it
    was when the requests lived in one module: stored fingerprints stay valid.
    """
    content: dict[str, Any] = {"type": type(request).__name__}
    for name in _names_of(type(request)):
        value = getattr(request, name)
        if name == "recipient_token_id" and value is None:
            continue  # added later: requests without it keep their earlier fingerprints
        content[name] = str(value) if isinstance(value, Money) else value
    encoded = _CANONICAL_JSON.encode(content).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True, slots=True)
class SetupPrepaid:
    """Issue a prepaid instrument (what the SetupPrepaid pipeline does once the buyer agrees)."""

    caller_id: str
    recipient_id: str
    sender_id: str
    payment_method_id: str
    caller_reference_sender: str
    caller_reference_funding: str
    funding_limit: Money | None
    valid_from: int | None = None
    valid_until: int | None = None
    payment_reason: str = ""


@dataclass(frozen=True, slots=True)
class SetupPostpaid:
    """Open a credit instrument (what the SetupPostpaid pipeline does)."""

    caller_id: str
    recipient_id: str
    sender_id: str
    payment_method_id: str
    caller_reference_sender: str
    caller_reference_settlement: str
    credit_limit: Money
    global_amount_limit: Money | None = None
    min_charge: Money | None = None
    max_charge: Money | None = None
    valid_from: int | None = None
    valid_until: int | None = None
    payment_reason: str = ""


@dataclass(frozen=True, slots=True)
class InstrumentSetup:
    instrument: Instrument
    sender_token: Token
    second_token: Token  # the funding token (prepaid) or the settlement token (postpaid)


@dataclass(frozen=True, slots=True)
class SetupSenderToken:
    """Issue a SingleUse, MultiUse or Recurring sender token on a new authorization (what
    those pipelines do once the buyer agrees; issue #19). ``kind`` is one of
    :data:`penny.domain.model.AUTHORIZATION_TOKEN_KINDS`; the terms each kind takes are
    :class:`penny.domain.model.TokenTerms`'s. Keyed by the one caller reference."""

    caller_id: str
    recipient_id: str
    sender_id: str
    payment_method_id: str
    caller_reference: str
    kind: TokenKind
    currency: str
    transaction_amount: Money | None = None
    amount_type: AmountType | None = None
    global_amount_limit: Money | None = None
    usage_limits: tuple[UsageLimitTerm, ...] = ()
    recurring_period: str | None = None
    reserve: bool = False
    valid_from: int | None = None
    valid_until: int | None = None
    payment_reason: str = ""


@dataclass(frozen=True, slots=True)
class SenderTokenSetup:
    instrument: Instrument  # of kind authorization
    token: Token
    terms: TokenTerms

"""Instruments, tokens and transactions of FPS Aggregated Payments, as plain immutable data.

* A **prepaid instrument** is value a buyer (sender) bought from a merchant (recipient): its
  balance lives in a ledger account that may not go negative. It comes with a *funding token*
  (for ``FundPrepaid``) and a *prepaid sender token* (for ``Pay``).
* A **credit instrument** is a postpaid tab: its debt lives in a ledger account whose net debit
  is bounded by the credit limit and that cannot be repaid beyond the debt. It comes with a
  *credit sender token* (for ``Pay``) and a *settlement token* (for ``SettleDebt``).
* An **authorization** (issue #19) is a buyer's consent that a caller may charge one of the
  buyer's payment methods (a card, a bank account, the Penny balance) within limits: the
  instrument of a *SingleUse*, *MultiUse* or *Recurring* sender token (FPS's own token kinds).
  It holds the terms an instrument holds (who, currency, validity, the global amount limit and
  its charged total, the least and most one payment may be) and a ledger account that never
  moves (its bounds hold it at zero): money goes from the payment method straight to the
  merchant. :class:`TokenTerms` holds what is particular to the token kind.
* A **transaction** is the record of one accepted FPS operation, with FPS statuses.

Times are microseconds since the epoch; amounts are minor units of the instrument's currency.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from penny.domain.fees import Method


class InstrumentKind(enum.Enum):
    prepaid = "prepaid"
    credit = "credit"
    #: A buyer's authorization to charge a payment method (SingleUse/MultiUse/Recurring).
    authorization = "authorization"


class TokenKind(enum.Enum):
    """What a token is for. Values are stored."""

    prepaid_sender = "prepaid_sender"
    funding = "funding"
    credit_sender = "credit_sender"
    settlement = "settlement"
    #: FPS's own sender tokens on an authorization (issue #19).
    single_use = "single_use"
    multi_use = "multi_use"
    recurring = "recurring"

    @property
    def fps_type(self) -> str:
        """The FPS ``TokenType`` reported for it (see docs/decisions.md: the Aggregated
        Payments tokens are all MultiUse; the authorization tokens are their own kind)."""
        return _FPS_TYPES.get(self, "MultiUse")

    @property
    def authorizes(self) -> bool:
        """Whether it is a sender token on an authorization (SingleUse, MultiUse, Recurring)."""
        return self in AUTHORIZATION_TOKEN_KINDS


_FPS_TYPES: dict[TokenKind, str] = {
    TokenKind.single_use: "SingleUse",
    TokenKind.multi_use: "MultiUse",
    TokenKind.recurring: "Recurring",
}
#: The sender token kinds of an authorization instrument.
AUTHORIZATION_TOKEN_KINDS: frozenset[TokenKind] = frozenset(_FPS_TYPES)
#: The FPS token type of each authorization token kind, and back.
AUTHORIZATION_KIND_OF_TYPE: dict[str, TokenKind] = {v: k for k, v in _FPS_TYPES.items()}


class AmountType(enum.Enum):
    """How a MultiUse token's ``transactionAmount`` bounds each payment (FPS ``amountType``)."""

    exact = "Exact"
    maximum = "Maximum"
    minimum = "Minimum"


class UsageLimitType(enum.Enum):
    """What a token usage limit counts (FPS ``usageLimitTypeN``)."""

    amount = "Amount"
    count = "Count"


@dataclass(frozen=True, slots=True)
class UsageLimitTerm:
    """One usage limit of a MultiUse token: at most ``value`` (minor units for ``Amount``, a
    number of payments for ``Count``) per ``period`` (FPS text such as ``1 Month``; None: the
    token's whole life)."""

    type: UsageLimitType
    value: int
    period: str | None = None


#: How long a SingleUse token is valid when the caller sets no expiry (spec §7.4: 3 hours).
SINGLE_USE_VALIDITY_US = 3 * 3_600 * 1_000_000
#: How long a MultiUse token is valid when the caller sets no expiry (spec §7.4: 1 year).
MULTI_USE_VALIDITY_US = 365 * 86_400 * 1_000_000


@dataclass(frozen=True, slots=True)
class TokenTerms:
    """What an authorization token allows beyond its instrument's terms (issue #19).

    * SingleUse: one payment of at most ``transaction_amount``; ``reserve`` — the token is for
      ``Reserve`` (then ``Settle``) instead of ``Pay``.
    * MultiUse: payments bounded by ``transaction_amount`` as ``amount_type`` says (when
      given), the instrument's global amount limit, and up to two ``usage_limits``.
    * Recurring: at most one payment of at most ``transaction_amount`` per
      ``recurring_period`` (FPS text such as ``1 Month``), counted from the validity start.

    ``old_token_id`` is the token an EditToken replaced (FPS ``OldTokenId``).
    """

    token_id: str
    transaction_amount: int | None = None
    amount_type: AmountType | None = None
    reserve: bool = False
    recurring_period: str | None = None
    usage_limits: tuple[UsageLimitTerm, ...] = ()
    old_token_id: str | None = None


class FeePayer(enum.StrEnum):
    """FPS ``ChargeFeeTo`` / ``FPSFeesPaidBy``: who bears Penny's fee. Values are stored."""

    recipient = "Recipient"
    caller = "Caller"


class TokenStatus(enum.Enum):
    active = "Active"
    inactive = "Inactive"


@dataclass(frozen=True, slots=True)
class TokenFilter:
    """What GetTokens narrows a caller's tokens (and installed instructions) by; ``None``:
    any."""

    status: TokenStatus | None = None
    caller_reference: str | None = None
    friendly_name: str | None = None


#: Every token of the caller's.
ANY_TOKEN = TokenFilter()


class Operation(enum.Enum):
    """FPS ``FPSOperation`` values (the API's CamelCase)."""

    pay = "Pay"
    refund = "Refund"
    settle_debt = "SettleDebt"
    write_off_debt = "WriteOffDebt"
    fund_prepaid = "FundPrepaid"
    #: A merchant moving its payable balance to its bank (FPS's IPN-only WITHDRAW_FUNDS).
    withdraw = "Withdraw"
    #: A hold on the sender's instrument (issue #19), finished by Settle or Cancel or expiry.
    reserve = "Reserve"
    #: The part of a Reserve that was charged (a transaction of its own; parent: the Reserve).
    settle = "Settle"

    @property
    def ipn_name(self) -> str:
        """The upper-snake form IPNs use (``FUND_PREPAID``)."""
        return {
            Operation.pay: "PAY",
            Operation.refund: "REFUND",
            Operation.settle_debt: "SETTLE_DEBT",
            Operation.write_off_debt: "WRITE_OFF_DEBT",
            Operation.fund_prepaid: "FUND_PREPAID",
            Operation.withdraw: "WITHDRAW_FUNDS",
            Operation.reserve: "RESERVE",
            Operation.settle: "SETTLE",
        }[self]


class Status(enum.Enum):
    """FPS ``TransactionStatus``."""

    pending = "Pending"
    success = "Success"
    failure = "Failure"
    reserved = "Reserved"
    cancelled = "Cancelled"


class StatusCode(enum.StrEnum):
    """FPS ``StatusCode`` of a transaction (spec §6.2): the codes Penny reports. Values are
    stored and sent as they are."""

    #: A transaction being decided, before it has a code (never stored or sent).
    undecided = ""
    success = "Success"
    pending_network_response = "PendingNetworkResponse"
    transaction_denied = "TransactionDenied"
    #: Cancelled by the caller (FPS spelled this code with one *l*, the status with two).
    canceled = "Canceled"
    #: A reserve not settled within its timeout (or a transaction past its timeout).
    expired = "Expired"


#: Status messages Penny reports with them (FPS StatusMessage, §6.2 of the spec).
SUCCESS_MESSAGE = "The transaction was successful and the payment instrument was charged."
PENDING_MESSAGE = "The transaction is awaiting a response from the backend payment processor."
RESERVED_MESSAGE = "The requested amount was reserved successfully."
CANCELED_MESSAGE = "The transaction was explicitly canceled by the caller."
EXPIRED_MESSAGE = "The reserved amount was not settled within the timeout."


@dataclass(frozen=True, slots=True)
class Instrument:
    id: str
    kind: InstrumentKind
    sender_id: str
    recipient_id: str
    currency: str
    ledger_account_id: int
    created_at: int
    valid_from: int
    valid_until: int | None
    #: Prepaid: the most that may ever be funded in total (FPS ``fundingAmount``), or None.
    funding_limit: int | None = None
    funded_total: int = 0
    #: Postpaid: the debt may not pass this (also the ledger account's debit limit).
    credit_limit: int | None = None
    #: Postpaid: the most that may ever be charged in total, or None.
    global_amount_limit: int | None = None
    charged_total: int = 0
    min_charge: int | None = None
    max_charge: int | None = None
    #: Postpaid: how many SettleDebts have been accepted; a Pay made before the latest one
    #: counts as settled and is no longer refundable.
    settlement_count: int = 0
    payment_reason: str = ""

    def is_valid_at(self, now: int) -> bool:
        return self.valid_from <= now and (self.valid_until is None or now < self.valid_until)


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    kind: TokenKind
    instrument_id: str
    caller_id: str
    sender_id: str
    caller_reference: str
    status: TokenStatus
    created_at: int
    payment_method_id: str | None = None
    friendly_name: str = ""
    payment_reason: str = ""
    cancelled_at: int | None = None
    #: Its GateKeeper script (docs/gatekeeper.md), written when the token is issued; None for
    #: tokens issued before scripts were stored (the script is then derived from the
    #: instrument, see penny.services.gatekeeper).
    script: str | None = None

    @property
    def active(self) -> bool:
        return self.status is TokenStatus.active


@dataclass(frozen=True, slots=True)
class PaymentInstruction:
    """A token a caller installed on its own account with ``InstallPaymentInstruction``: a
    GateKeeper script and FPS's token metadata, bound to no instrument (docs/decisions.md #7)."""

    id: str
    caller_id: str
    caller_reference: str
    token_type: str  # SingleUse | MultiUse | Recurring | Unrestricted
    status: TokenStatus
    created_at: int
    script: str
    friendly_name: str = ""
    payment_reason: str = ""
    cancelled_at: int | None = None

    @property
    def active(self) -> bool:
        return self.status is TokenStatus.active


@dataclass(frozen=True, slots=True)
class RecipientToken:
    """A merchant's consent, given in the Recipient pipeline, that a marketplace application
    (the caller) names it as the recipient of Pays and takes a fee of at most
    ``max_fixed_fee`` (minor units) plus ``max_variable_fee`` (hundredths of a percent of the
    amount) from each (docs/decisions.md, #19)."""

    id: str
    caller_id: str
    recipient_id: str
    caller_reference: str
    currency: str
    max_fixed_fee: int
    max_variable_fee: int
    recipient_pays_fee: bool
    refund_token_id: str
    status: TokenStatus
    created_at: int
    valid_from: int
    valid_until: int | None = None
    payment_reason: str = ""
    cancelled_at: int | None = None

    @property
    def active(self) -> bool:
        return self.status is TokenStatus.active

    def is_valid_at(self, now: int) -> bool:
        return self.valid_from <= now and (self.valid_until is None or now < self.valid_until)


@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    operation: Operation
    caller_id: str
    caller_reference: str
    fingerprint: str
    sender_id: str
    recipient_id: str
    amount: int
    currency: str
    fees: int
    method: Method
    status: Status
    status_code: StatusCode
    status_message: str
    received_at: int
    completed_at: int | None
    instrument_id: str | None = None
    sender_token_id: str | None = None
    parent_id: str | None = None
    refunded: int = 0
    journal_id: int | None = None
    pending_journal_id: int | None = None
    #: For a pending transaction: when the money source gives its answer, and which.
    completes_at: int | None = None
    completes_ok: bool = True
    #: A postpaid Pay: the instrument's settlement count when it was accepted.
    settlements_before: int | None = None
    sender_description: str = ""
    caller_description: str = ""
    ipn_url: str | None = None
    #: The RecipientTokenId the Pay named: a recipient token (a marketplace Pay) or a payment
    #: instruction the caller installed.
    recipient_token_id: str | None = None
    #: A marketplace Pay: the caller's fee (FPS ``MarketplaceFees``), in the same journal.
    marketplace_fee: int = 0
    #: Who bore Penny's fee (FPS ``FPSFeesPaidBy``).
    fees_paid_by: FeePayer = FeePayer.recipient

    @property
    def final(self) -> bool:
        return self.status in (Status.success, Status.failure, Status.cancelled)

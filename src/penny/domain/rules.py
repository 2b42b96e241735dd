"""The rules of each Aggregated Payments operation: checks, and the journal each one books.

Pure functions over the domain's data. The chart of accounts they book against:

* per merchant: **payable** (money Penny owes the merchant), **prepaid_issued** (the prepaid
  value the merchant has sold and not yet redeemed: its net debit equals the sum of the
  balances of the merchant's prepaid instruments, so GetTotalPrepaidLiability is one read) and
  **credit_extended** (its net credit equals the debt buyers owe the merchant);
* per buyer: **balance** (the buyer's own Penny balance);
* per instrument: the prepaid **balance** or the postpaid **debt**;
* system: **external_funding** (money arriving from card and bank networks) and **fees**.

Each function returns the legs of one journal; signs follow the ledger (+ debit, − credit).
Which check each operation runs, in which order, and which are enforced elsewhere (the tokens'
GateKeeper scripts: min/max charge; the ledger's bounds: balances, the credit limit) is
:data:`penny.domain.checks.CHECKS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from penny.domain.errors import Refusal
from penny.domain.model import Instrument, InstrumentKind, Token, TokenKind
from penny.ledger.model import Leg
from penny.money import Money

#: Largest single amount Penny accepts for any operation ($1,000,000.00 in cents).
MAX_AMOUNT_MINOR = 100_000_000


@dataclass(frozen=True, slots=True)
class Chart:
    """The system accounts of one currency."""

    currency: str
    external_funding: int
    fees: int


@dataclass(frozen=True, slots=True)
class MerchantBooks:
    payable: int
    prepaid_issued: int
    credit_extended: int


def check_amount(amount: Money, currency: str) -> Refusal | None:
    """A positive amount in the instrument's currency, not absurdly large."""
    if amount.currency != currency:
        return Refusal.invalid_currency
    if amount.minor <= 0:
        return Refusal.invalid_amount
    if amount.minor > MAX_AMOUNT_MINOR:
        return Refusal.amount_out_of_range
    return None


def check_token(token: Token | None, kind: TokenKind, caller_id: str) -> Refusal | None:
    """The token exists, was installed for this caller, is of this kind and is active.

    Another caller's token answers exactly like an unknown one (no information leak).
    """
    if token is None or token.caller_id != caller_id:
        return Refusal.unknown_token
    if token.kind is not kind:
        return Refusal.wrong_token_type
    if not token.active:
        return Refusal.token_not_active
    return None


def check_instrument(
    instrument: Instrument | None, kind: InstrumentKind, caller_id: str, now: int
) -> Refusal | None:
    """The instrument exists, its recipient is the caller, and it is valid now."""
    if instrument is None or instrument.kind is not kind:
        return Refusal.unknown_instrument
    if instrument.recipient_id != caller_id:
        return Refusal.unknown_instrument
    if now < instrument.valid_from:
        return Refusal.instrument_not_yet_valid
    if instrument.valid_until is not None and now >= instrument.valid_until:
        return Refusal.instrument_expired
    return None


def check_global_amount_limit(instrument: Instrument, amount: Money) -> Refusal | None:
    """Postpaid, and a MultiUse token's authorization: the lifetime total charged may not
    pass the global amount limit (a counter of the instrument: refunds lower it, so it is not
    a GateKeeper usage limit)."""
    limit = instrument.global_amount_limit
    if limit is not None and instrument.charged_total + amount.minor > limit:
        return Refusal.exceeds_instrument_limits
    return None


def check_authorized_total(instrument: Instrument, amount: Money) -> Refusal | None:
    """A MultiUse token's global amount limit (its authorization's, issue #19): FPS's
    ``TokenUsageError``, like the token's other usage limits."""
    limit = instrument.global_amount_limit
    if limit is not None and instrument.charged_total + amount.minor > limit:
        return Refusal.token_usage_exceeded
    return None


def check_funding_limit(instrument: Instrument, amount: Money) -> Refusal | None:
    limit = instrument.funding_limit
    if limit is not None and instrument.funded_total + amount.minor > limit:
        return Refusal.funding_limit_exceeded
    return None


def _spend_legs(instrument: Instrument, counterpart: int, amount: Money) -> tuple[Leg, ...]:
    """The instrument's account up by ``amount``, ``counterpart`` (the merchant's) down."""
    c = amount.currency
    return (
        Leg(instrument.ledger_account_id, amount.minor, c),
        Leg(counterpart, -amount.minor, c),
    )


def prepaid_pay_legs(
    instrument: Instrument, books: MerchantBooks, amount: Money
) -> tuple[Leg, ...]:
    """Spend prepaid value: the balance goes down, the merchant's liability with it."""
    return _spend_legs(instrument, books.prepaid_issued, amount)


def postpaid_pay_legs(
    instrument: Instrument, books: MerchantBooks, amount: Money
) -> tuple[Leg, ...]:
    """Record debt: the buyer owes more, the merchant has extended more credit."""
    return _spend_legs(instrument, books.credit_extended, amount)


def charge_legs(
    instrument: Instrument,
    books: MerchantBooks,
    chart: Chart,
    source_account: int,
    amount: Money,
    fee: Money,
) -> tuple[Leg, ...]:
    """FundPrepaid's and SettleDebt's journal: money from the source to the merchant less the
    fee (the fee to the fee account), and the instrument's account down by the full amount
    against the merchant's counterpart: on a prepaid instrument the balance gets the amount,
    which the merchant now owes in prepaid value; on a credit instrument the debt goes down."""
    prepaid = instrument.kind is InstrumentKind.prepaid
    counterpart = books.prepaid_issued if prepaid else books.credit_extended
    c = amount.currency
    legs = [
        Leg(source_account, amount.minor, c),
        Leg(books.payable, -(amount.minor - fee.minor), c),
        Leg(counterpart, amount.minor, c),
        Leg(instrument.ledger_account_id, -amount.minor, c),
    ]
    if fee.minor:
        legs.insert(2, Leg(chart.fees, -fee.minor, c))
    return _without_zero_legs(legs)


def direct_pay_legs(
    books: MerchantBooks, chart: Chart, source_account: int, amount: Money, fee: Money
) -> tuple[Leg, ...]:
    """Pay on an authorization (a SingleUse, MultiUse or Recurring token, issue #19): money
    from the buyer's payment method (``source_account``: external funding for a card or a
    bank, the buyer's balance) to the merchant, less the fee (to the fee account)."""
    c = amount.currency
    legs = [
        Leg(source_account, amount.minor, c),
        Leg(books.payable, -(amount.minor - fee.minor), c),
        Leg(chart.fees, -fee.minor, c),
    ]
    return _without_zero_legs(legs)


def direct_refund_legs(
    books: MerchantBooks, chart: Chart, source_account: int, amount: Money, fee_back: Money
) -> tuple[Leg, ...]:
    """Refund (part of) a Pay on an authorization: ``amount`` back to the buyer's payment
    method (``source_account``), from the merchant's payable balance less ``fee_back`` — the
    fee's share of the refund, which the fee account gives back."""
    c = amount.currency
    legs = [
        Leg(books.payable, amount.minor - fee_back.minor, c),
        Leg(chart.fees, fee_back.minor, c),
        Leg(source_account, -amount.minor, c),
    ]
    return _without_zero_legs(legs)


def refunded_fee(fee: int, amount: int, refund: int) -> int:
    """The fee's share of a refund of ``refund`` out of ``amount`` (rounded down)."""
    return fee * refund // amount


def write_off_legs(instrument: Instrument, books: MerchantBooks, amount: Money) -> tuple[Leg, ...]:
    """WriteOffDebt: the debt goes down and no money moves."""
    c = amount.currency
    return (
        Leg(books.credit_extended, amount.minor, c),
        Leg(instrument.ledger_account_id, -amount.minor, c),
    )


def refund_legs(instrument: Instrument, books: MerchantBooks, amount: Money) -> tuple[Leg, ...]:
    """Reverse (part of) a Pay: prepaid value comes back, or the debt goes down."""
    c = amount.currency
    contra = (
        books.prepaid_issued if instrument.kind is InstrumentKind.prepaid else books.credit_extended
    )
    return (
        Leg(contra, amount.minor, c),
        Leg(instrument.ledger_account_id, -amount.minor, c),
    )


def _without_zero_legs(legs: list[Leg]) -> tuple[Leg, ...]:
    """Drop a leg of zero (a fee that takes the whole amount leaves the merchant nothing)."""
    return tuple(leg for leg in legs if leg.amount != 0)


def withdrawal_legs(books: MerchantBooks, chart: Chart, amount: Money) -> tuple[Leg, ...]:
    """A merchant's payable balance leaves for its bank (held as pending until it arrives)."""
    c = amount.currency
    return (Leg(books.payable, amount.minor, c), Leg(chart.external_funding, -amount.minor, c))

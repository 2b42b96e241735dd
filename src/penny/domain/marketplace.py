"""The marketplace (issue #19): a Pay whose recipient is another merchant, with the caller's fee.

A marketplace application (the caller) issues the prepaid or postpaid instrument — only a
recipient may issue those, so the caller is the instrument's recipient — and names, with
``RecipientTokenId``, a merchant that accepted its terms in the Recipient pipeline. The Pay's
one journal then (signs as in the ledger: + debit, − credit):

* spends the buyer's prepaid value or records the debt, exactly as a plain Pay
  (:func:`penny.domain.rules.prepaid_pay_legs` / ``postpaid_pay_legs``), and
* pays the recipient merchant from the caller's payable balance: the caller's payable is
  debited ``amount − marketplace fee`` (plus Penny's fee when ``ChargeFeeTo=Caller``), the
  recipient's payable credited ``amount − marketplace fee`` (less Penny's fee when the
  recipient bears it), and Penny's fee account credited its fee.

So the caller keeps its fee in its payable balance, every leg is in one journal and the legs
sum to zero by construction. A refund reverses part of it (:func:`refund_transfer_legs`).
On a SingleUse, MultiUse or Recurring token the buyer's money comes from their payment method
straight to the recipient (:func:`direct_transfer_legs`); a Reserve holds the same journal and
its Settle takes the caller's fee pro rata (:func:`settled_split`).
Pure: no SQL, HTTP or clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from penny.domain.errors import Refusal
from penny.domain.model import FeePayer, RecipientToken
from penny.ledger.model import Leg
from penny.money import Money, percent_of

#: The largest MarketplaceVariableFee (100 %), in hundredths of a percent.
MAX_VARIABLE_FEE: Final = 10_000


@dataclass(frozen=True, slots=True)
class MarketplaceFees:
    """What the caller asked for on one Pay: a fixed fee (minor units) and a variable one
    (hundredths of a percent), and who bears Penny's fee (``None``: not said)."""

    fixed: int = 0
    variable: int = 0
    charge_fee_to: FeePayer | None = None

    @property
    def any(self) -> bool:
        return bool(self.fixed or self.variable)


@dataclass(frozen=True, slots=True)
class Split:
    """How a marketplace Pay's amount is shared: the caller's fee, Penny's fee and its payer."""

    marketplace_fee: int
    penny_fee: int
    fee_payer: FeePayer

    def recipient_gets(self, amount: int) -> int:
        penny = self.penny_fee if self.fee_payer is FeePayer.recipient else 0
        return amount - self.marketplace_fee - penny


def check_token(token: RecipientToken | None, caller_id: str, now: int) -> Refusal | None:
    """The recipient token exists, was given to this caller, is active and valid now (another
    caller's token answers like an unknown one)."""
    if token is None or token.caller_id != caller_id:
        return Refusal.unknown_recipient_token
    if not token.active:
        return Refusal.recipient_token_not_active
    if not token.is_valid_at(now):
        return Refusal.recipient_token_not_active
    return None


def split(
    token: RecipientToken, fees: MarketplaceFees, amount: Money, penny_fee: Money
) -> Split | Refusal:
    """The caller's fee and who bears Penny's, or why the recipient's terms refuse them."""
    if amount.currency != token.currency:
        return Refusal.invalid_currency
    if fees.fixed > token.max_fixed_fee or fees.variable > token.max_variable_fee:
        return Refusal.marketplace_fee_too_high
    payer = fees.charge_fee_to
    if payer is None:
        payer = FeePayer.recipient if token.recipient_pays_fee else FeePayer.caller
    elif payer is FeePayer.recipient and not token.recipient_pays_fee:
        return Refusal.recipient_does_not_pay_fees
    marketplace_fee = fees.fixed + percent_of(amount, fees.variable).minor
    result = Split(marketplace_fee, penny_fee.minor, payer)
    if result.recipient_gets(amount.minor) <= 0:
        return Refusal.fees_exceed_amount
    return result


def transfer_legs(
    caller_payable: int, recipient_payable: int, fees_account: int, amount: Money, split: Split
) -> tuple[Leg, ...]:
    """The recipient paid from the caller's payable balance, the caller keeping its fee and
    Penny taking its own (added to a Pay's spend legs, in the same journal)."""
    c = amount.currency
    caller_pays = amount.minor - split.marketplace_fee
    if split.fee_payer is FeePayer.caller:
        caller_pays += split.penny_fee
    legs = [
        Leg(caller_payable, caller_pays, c),
        Leg(recipient_payable, -split.recipient_gets(amount.minor), c),
    ]
    if split.penny_fee:
        legs.append(Leg(fees_account, -split.penny_fee, c))
    return tuple(legs)


def direct_transfer_legs(
    source: int,
    caller_payable: int,
    recipient_payable: int,
    fees_account: int,
    amount: Money,
    split: Split,
) -> tuple[Leg, ...]:
    """A marketplace Pay (or Reserve) on a SingleUse, MultiUse or Recurring token: the buyer's
    money from ``source`` (their card or bank through external funding, or their balance)
    straight to the recipient, less the caller's fee (to the caller's payable) and Penny's (to
    the fee account; the caller's payable pays it instead under ``ChargeFeeTo=Caller``). One
    leg per account, so a pending journal holds on the caller's payable only what it takes."""
    c = amount.currency
    caller_gets = split.marketplace_fee
    if split.fee_payer is FeePayer.caller:
        caller_gets -= split.penny_fee
    legs = [
        Leg(source, amount.minor, c),
        Leg(recipient_payable, -split.recipient_gets(amount.minor), c),
        Leg(caller_payable, -caller_gets, c),
        Leg(fees_account, -split.penny_fee, c),
    ]
    return tuple(leg for leg in legs if leg.amount != 0)


def settled_split(reserved: int, shares: Split, settled: int, penny_fee: int) -> Split | Refusal:
    """The fees of a Settle of ``settled`` of a marketplace reserve of ``reserved``: the
    caller's fee pro rata (rounded down), Penny's fee of the settled amount, borne as the
    reserve said; refused when they leave the recipient nothing."""
    result = Split(shares.marketplace_fee * settled // reserved, penny_fee, shares.fee_payer)
    if result.recipient_gets(settled) <= 0:
        return Refusal.fees_exceed_amount
    return result


@dataclass(frozen=True, slots=True)
class RefundShares:
    """What each party gives back of a refund of ``amount`` (pro rata, rounded down): Penny
    its fee's share, the caller its marketplace fee's share (MasterAndMarketplaceTxn only)."""

    penny_fee: int
    marketplace_fee: int


def refund_shares(
    original_amount: int, original: Split, amount: int, *, with_marketplace_fee: bool
) -> RefundShares:
    penny = original.penny_fee * amount // original_amount
    market = original.marketplace_fee * amount // original_amount if with_marketplace_fee else 0
    return RefundShares(penny, market)


def refund_transfer_legs(
    caller_payable: int,
    recipient_payable: int,
    fees_account: int,
    amount: Money,
    fee_payer: FeePayer,
    shares: RefundShares,
) -> tuple[Leg, ...]:
    """The refund's value back to the caller (whose prepaid liability or credit grows again):
    the recipient gives back ``amount`` less the fee shares returned to it, Penny its fee's
    share, the caller its fee's share (netted on its payable)."""
    c = amount.currency
    recipient_back = amount.minor - shares.marketplace_fee
    caller_back = -amount.minor + shares.marketplace_fee
    if fee_payer is FeePayer.recipient:
        recipient_back -= shares.penny_fee
    else:
        caller_back -= shares.penny_fee
    legs = [Leg(recipient_payable, recipient_back, c), Leg(caller_payable, caller_back, c)]
    if shares.penny_fee:
        legs.append(Leg(fees_account, shares.penny_fee, c))
    return tuple(leg for leg in legs if leg.amount != 0)


def netted(legs: tuple[Leg, ...]) -> tuple[Leg, ...]:
    """``legs`` with one leg per account (the ledger takes each account once per journal),
    in the order of their first leg, and no leg of zero: a refund of a marketplace payment on
    an authorization moves the caller's payable twice (the refund's own leg and its fee's
    share)."""
    totals: dict[int, int] = {}
    currency: dict[int, str] = {}
    for leg in legs:
        totals[leg.account_id] = totals.get(leg.account_id, 0) + leg.amount
        currency[leg.account_id] = leg.currency
    return tuple(Leg(a, total, currency[a]) for a, total in totals.items() if total != 0)

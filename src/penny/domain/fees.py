"""The fee schedule: what Penny charges when real money moves (funding and settling).

A fee is ``fixed + amount × rate`` (the rate in basis points, rounded half up to the cent),
then held between a minimum and a maximum, and never more than the amount itself. The fee is
always deducted from what the recipient receives (FPS's ``FPSFeesPaidBy`` = Recipient). Moving
prepaid value (a prepaid Pay) or recording debt (a postpaid Pay, a write-off) moves no money and
costs nothing. Rounding happens once, in :func:`penny.money.percent_of`; the journal then books
``amount − fee`` to the merchant and ``fee`` to Penny, so it sums to zero by construction.
Defaults are documented in docs/fees.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from penny.money import Money, percent_of


class Method(enum.Enum):
    """How money reaches Penny; values are FPS ``PaymentMethod`` names."""

    card = "CC"
    bank = "ACH"
    balance = "ABT"
    prepaid = "Prepaid"
    debt = "Debt"


@dataclass(frozen=True, slots=True)
class FeeRule:
    """``fixed + rate``, bounded by ``minimum`` and ``maximum`` (minor units)."""

    fixed: int = 0
    basis_points: int = 0
    minimum: int = 0
    maximum: int | None = None

    def fee_for(self, amount: Money) -> Money:
        variable = percent_of(amount, self.basis_points).minor
        minor = max(self.fixed + variable, self.minimum)
        if self.maximum is not None:
            minor = min(minor, self.maximum)
        return Money(min(minor, amount.minor), amount.currency)


#: The default schedule (docs/fees.md): cards 2.9 % + $0.30, bank transfers 1.5 % + $0.05
#: capped at $5.00, a buyer's Penny balance 0.5 % + $0.01; moving prepaid value or debt: free.
DEFAULT_RULES: Final[dict[Method, FeeRule]] = {
    Method.card: FeeRule(fixed=30, basis_points=290),
    Method.bank: FeeRule(fixed=5, basis_points=150, maximum=500),
    Method.balance: FeeRule(fixed=1, basis_points=50),
    Method.prepaid: FeeRule(),
    Method.debt: FeeRule(),
}


@dataclass(frozen=True)
class FeeSchedule:
    """Fee rules per payment method; a method without a rule costs nothing."""

    rules: dict[Method, FeeRule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def fee(self, method: Method, amount: Money) -> Money:
        rule = self.rules.get(method)
        return Money.zero(amount.currency) if rule is None else rule.fee_for(amount)

    @classmethod
    def flat(cls, **fixed_by_method: int) -> FeeSchedule:
        """A schedule of fixed fees only, e.g. ``FeeSchedule.flat(card=50)`` (tests, demos)."""
        return cls({Method[name]: FeeRule(fixed=minor) for name, minor in fixed_by_method.items()})

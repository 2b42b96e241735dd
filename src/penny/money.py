"""Money: integer minor units plus an ISO 4217 currency, in one immutable type.

Decimal strings exist only at the edges: :func:`parse_money` turns ``"0.01"`` into
``Money(1, "USD")`` and :meth:`Money.fps` / :meth:`Money.plain` render it back. No float is
involved anywhere (a test walks the syntax tree of the core to keep it so). Every rounding is an
explicit, named function: :func:`percent_of` rounds half up, and callers book the residue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: Minor-unit scale of each supported currency (ISO 4217 exponent). Changing a currency's scale
#: after money has been booked in it would change the meaning of stored integers, so entries are
#: only ever added.
CURRENCY_SCALES: Final[dict[str, int]] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "CHF": 2,
    "JPY": 0,
    "KRW": 0,
    "BHD": 3,
    "KWD": 3,
}

#: Digits allowed before the decimal point when parsing. 13 digits of dollars is far beyond any
#: payment and keeps every amount well inside a signed 64-bit column.
MAX_INTEGER_DIGITS: Final = 13

#: The largest number of minor units any account counter may hold (signed 64-bit storage).
MAX_MINOR_UNITS: Final = 2**63 - 1

#: FPS renders amounts with six decimals ("1.000000") whatever the currency's scale.
FPS_DECIMALS: Final = 6

_AMOUNT_RE: Final = re.compile(r"\A(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?\Z")


class MoneyError(ValueError):
    """An amount or currency given at an edge (a request, a form, the CLI) is not acceptable."""


def currency_scale(currency: str) -> int:
    """Return the minor-unit exponent of ``currency``, or raise :class:`MoneyError`."""
    try:
        return CURRENCY_SCALES[currency]
    except KeyError:
        raise MoneyError(f"unsupported currency {currency!r}") from None


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount: ``minor`` units (cents for USD) of ``currency``.

    Negative amounts are allowed in arithmetic (a refund leg, a balance that went down) but
    :func:`parse_money` only ever produces non-negative ones.
    """

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:
            raise TypeError(f"Money.minor must be an int, not {type(self.minor).__name__}")
        currency_scale(self.currency)
        if abs(self.minor) > MAX_MINOR_UNITS:
            raise MoneyError("amount is out of range")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor >= other.minor

    @property
    def is_positive(self) -> bool:
        return self.minor > 0

    def _digits(self, decimals: int) -> str:
        scale = currency_scale(self.currency)
        assert decimals >= scale, "rendering may pad, never round"
        sign = "-" if self.minor < 0 else ""
        units, frac = divmod(abs(self.minor), 10**scale)
        if decimals == 0:
            return f"{sign}{units}"
        frac_text = str(frac).rjust(scale, "0") if scale else ""
        return f"{sign}{units}.{frac_text.ljust(decimals, '0')}"

    def plain(self) -> str:
        """Render with the currency's own number of decimals: ``"1.00"``."""
        return self._digits(currency_scale(self.currency))

    def fps(self) -> str:
        """Render as FPS did, with six decimals: ``"1.000000"``."""
        return self._digits(FPS_DECIMALS)

    def __str__(self) -> str:
        return f"{self.currency} {self.plain()}"


def parse_amount(text: str, currency: str) -> Money:
    """Parse a non-negative decimal string such as ``"0.01"``, ``"25"`` or ``"25.1"``.

    Rejected with :class:`MoneyError`: empty text, signs, exponents, ``NaN``/``Infinity``,
    whitespace, more fractional digits than the currency has (``"0.001"`` for USD; trailing
    zeros beyond the scale, as in FPS's ``"1.000000"``, are accepted because they lose nothing),
    and more than :data:`MAX_INTEGER_DIGITS` integer digits.
    """
    scale = currency_scale(currency)
    if not isinstance(text, str) or not text:
        raise MoneyError("amount is empty")
    if len(text) > MAX_INTEGER_DIGITS + 1 + FPS_DECIMALS + 4:
        raise MoneyError("amount is too long")
    match = _AMOUNT_RE.match(text)
    if match is None:
        if text.startswith("-") and _AMOUNT_RE.match(text[1:]):
            raise MoneyError(f"amount {text!r} is negative: it must be positive")
        raise MoneyError(f"amount {text!r} is not a plain decimal number such as 10.25")
    integer, frac = match.group("int"), match.group("frac") or ""
    if len(integer.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise MoneyError(f"amount {text!r} is too large")
    significant = frac.rstrip("0")
    if len(significant) > scale:
        raise MoneyError(f"amount {text!r} has more than {scale} decimal places for {currency}")
    minor = int(integer) * 10**scale + (int(significant.ljust(scale, "0")) if scale else 0)
    return Money(minor, currency)


def parse_positive_amount(text: str, currency: str) -> Money:
    """:func:`parse_amount`, refusing zero too: what a payment, a funding, a settlement, a
    write-off or a refund must be. Every refusal says what is wrong with the amount."""
    money = parse_amount(text, currency)
    if not money.is_positive:
        raise MoneyError(f"amount {text!r} is zero: it must be positive")
    return money


def parse_money(text: str) -> Money:
    """Parse ``"USD 10.25"`` (currency code, one space, amount), the GateKeeper/FPS literal form."""
    currency, sep, amount = text.partition(" ")
    if not sep:
        raise MoneyError(f"money {text!r} must look like 'USD 10.25'")
    return parse_amount(amount, currency)


def percent_of(amount: Money, basis_points: int) -> Money:
    """Return ``amount * basis_points / 10000``, rounded half up to the minor unit.

    Integer arithmetic only: the rounding is done on the numerator, never through a fraction.
    """
    if amount.minor < 0 or basis_points < 0:
        raise MoneyError("percent_of takes non-negative amounts and rates")
    numerator = amount.minor * basis_points
    quotient, remainder = divmod(numerator, 10_000)
    if remainder * 2 >= 10_000:
        quotient += 1
    return Money(quotient, amount.currency)

"""The buyer's SingleUse, MultiUse and Recurring authorizations (issue #19: a token of one of
those kinds on an instrument of kind ``authorization``) as the account site shows them: what
each allows, as the rows of a summary, and its GateKeeper rules in words.

The words are written from the same instrument and terms its script was generated from, and
only when the stored script is exactly that generated text
(:func:`penny.services.gatekeeper.authorization_script`); otherwise the page shows the script
as written. Pure: no database, no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from penny.domain.model import AmountType, Instrument, Token, TokenKind, TokenTerms
from penny.domain.model import UsageLimitType as Limit
from penny.domain.parties import PaymentMethod
from penny.services import gatekeeper
from penny.services.payments.steps import METHOD_KINDS
from penny.web.console import views

_KIND_WORDS = {
    TokenKind.single_use: "Single use",
    TokenKind.multi_use: "Multi use",
    TokenKind.recurring: "Recurring",
}
_AMOUNT_WORDS = {
    AmountType.exact: "exactly",
    AmountType.maximum: "at most",
    AmountType.minimum: "at least",
}


@dataclass(frozen=True, slots=True)
class Authorization:
    """An authorization token with what it is read with."""

    token: Token
    instrument: Instrument
    terms: TokenTerms
    merchant: str
    #: The payment method it charges (None once that method was removed).
    method: PaymentMethod | None

    def money(self, minor: int) -> str:
        return views.money(minor, self.instrument.currency)

    @property
    def kind(self) -> str:
        return _KIND_WORDS.get(self.token.kind, self.token.kind.value)

    def each_payment(self) -> str:
        """What one payment may be."""
        terms, low, high = self.terms, self.instrument.min_charge, self.instrument.max_charge
        amount = terms.transaction_amount
        if self.token.kind is TokenKind.multi_use and amount is not None and terms.amount_type:
            return f"{_AMOUNT_WORDS[terms.amount_type]} {self.money(amount)}"
        if low is not None and high is not None:
            return f"from {self.money(low)} to {self.money(high)}"
        if high is not None:
            return f"at most {self.money(high)}"
        if low is not None:
            return f"at least {self.money(low)}"
        return "any amount"

    def how_often(self) -> str:
        """How many payments it allows, and how much in all."""
        token, terms, instrument = self.token, self.terms, self.instrument
        if token.kind is TokenKind.single_use:
            parts = ["one reserve, settled later" if terms.reserve else "one payment"]
        elif token.kind is TokenKind.recurring:
            start = views.when(instrument.valid_from)
            parts = [f"one payment every {terms.recurring_period}, counted from {start}"]
        else:
            parts = [_limit_words(self, n.type, n.value, n.period) for n in terms.usage_limits]
            parts = parts or ["any number of payments"]
        if instrument.global_amount_limit is not None:
            parts.append(f"at most {self.money(instrument.global_amount_limit)} in all")
        return "; ".join(parts)

    def valid(self) -> str:
        start, end = self.instrument.valid_from, self.instrument.valid_until
        if end is None:
            return f"from {views.when(start)}, no end date"
        return f"from {views.when(start)} until {views.when(end)}"

    def charged_to(self) -> str:
        return self.method.describe() if self.method is not None else "a removed payment method"

    def summary(self) -> list[tuple[str, str]]:
        """The rows of the token page's summary: what it allows."""
        return [
            ("Each payment", self.each_payment()),
            ("How often", self.how_often()),
            ("Charged to", self.charged_to()),
        ]


def _limit_words(found: Authorization, kind: Limit, value: int, period: str | None) -> str:
    scope = f"every {period}" if period else "in all"
    if kind is Limit.count:
        return f"at most {value} payment{'s' if value != 1 else ''} {scope}"
    return f"at most {found.money(value)} {scope}"


def rules_in_words(found: Authorization) -> list[str] | None:
    """What its GateKeeper rules allow, in plain sentences; ``None`` when its script is not the
    one Penny generates from its instrument and terms (or its payment method is gone)."""
    token, instrument, merchant = found.token, found.instrument, found.merchant
    if found.method is None:
        return None
    method = METHOD_KINDS[found.method.kind].value
    written = gatekeeper.authorization_script(
        token.kind, instrument, token.caller_id, found.terms, method
    )
    if token.script != written:
        return None
    what = "reserving money that is settled later (Reserve)" if found.terms.reserve else None
    words = [
        f"Only for {what or 'payments for your purchases (Pay)'}.",
        f"Only {merchant} may use it, only to pay {merchant}, and only from your account.",
        f"Payments are charged to your {found.charged_to()}.",
        f"Valid {found.valid()}.",
        f"Each payment: {found.each_payment()}.",
    ]
    how_often = found.how_often()
    words.append(how_often[0].upper() + how_often[1:] + ".")
    return words

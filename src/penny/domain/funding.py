"""Funding sources: what happens when a buyer's payment method is charged.

:class:`FundingSource` is the interface a real card or bank processor plugs into;
:class:`SandboxFunding` is the one Penny ships, which answers from the behaviour stored with
each sandbox payment method (docs/sandbox.md):

===========================  ==================================================
method and behaviour         decision
===========================  ==================================================
card, ``succeed``            succeeded now
card, ``decline``            declined, with a reason
card, ``fail_later``         pending; fails after 1 sandbox day
card past its expiry month   declined ("the card has expired")
bank, ``succeed``            pending; succeeds after 4 sandbox days
bank, ``fail_later``         pending; fails (returned) after 4 sandbox days
balance                      succeeded now (the caller checks the ledger balance)
===========================  ==================================================

Pure: no SQL, no clock. "Now" is handed in; a pending decision names the time its final outcome
is known, and the caller (the payments service) completes it when its clock gets there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Protocol

from penny.domain.parties import CardBehaviour, PaymentMethod, PaymentMethodKind, card_expired
from penny.money import Money

DAY_US: Final = 86_400 * 1_000_000
#: How long a sandbox card charge that will fail stays pending.
CARD_FAILURE_DELAY_US: Final = DAY_US
#: How long a sandbox bank transfer takes to complete (either way).
BANK_TRANSFER_DELAY_US: Final = 4 * DAY_US

DECLINED_REASON: Final = "The card was declined by the issuing bank."
EXPIRED_REASON: Final = "The card has expired."


class ChargeOutcome(enum.Enum):
    """The three answers a funding source gives at the time of the charge."""

    declined = "declined"
    succeeded = "succeeded"
    pending = "pending"


@dataclass(frozen=True, slots=True)
class ChargeDecision:
    """A funding source's answer to one charge.

    ``declined``: ``reason`` says why and no money moves. ``succeeded``: the money is there
    now. ``pending``: the final outcome is known at ``completes_at`` (µs since the epoch), and
    is success when ``completes_ok`` (always false for the other two outcomes). Build one with
    :meth:`decline`, :meth:`success` or :meth:`pending_until`.
    """

    outcome: ChargeOutcome
    reason: str | None = None
    completes_at: int | None = None
    completes_ok: bool = False

    def __post_init__(self) -> None:
        is_pending = self.outcome is ChargeOutcome.pending
        assert (self.completes_at is not None) == is_pending, "only a pending charge completes"
        assert is_pending or not self.completes_ok, "only a pending charge completes"
        assert (self.reason is not None) == (self.outcome is ChargeOutcome.declined)

    @classmethod
    def decline(cls, reason: str) -> ChargeDecision:
        return cls(ChargeOutcome.declined, reason=reason)

    @classmethod
    def success(cls) -> ChargeDecision:
        return cls(ChargeOutcome.succeeded)

    @classmethod
    def pending_until(cls, completes_at: int, *, ok: bool) -> ChargeDecision:
        return cls(ChargeOutcome.pending, completes_at=completes_at, completes_ok=ok)


class FundingSource(Protocol):
    """Takes money from a buyer's payment method.

    ``charge`` is called once per accepted request, inside the request's transaction, with a
    ``reference`` unique to it (the transaction id): a real processor uses it as its idempotency
    key. It must not block for long and must not touch Penny's database; it moves money only
    outside Penny (Penny books the result in its ledger).
    """

    def charge(
        self, method: PaymentMethod, amount: Money, reference: str, now_us: int
    ) -> ChargeDecision: ...


def network_answer(method: PaymentMethod, decision: ChargeDecision, now_us: int) -> ChargeDecision:
    """A payment on a card as FPS answered it (issue #19): always ``Pending`` first, the
    card network's answer arriving once the payment is completed (at once for an answer the
    source gave now: success, or a decline that fails the pending payment). Bank transfers
    are pending anyway and the balance answers at once, so both are left as they are."""
    if method.kind is not PaymentMethodKind.card:
        return decision
    if decision.outcome is ChargeOutcome.succeeded:
        return ChargeDecision.pending_until(now_us, ok=True)
    if decision.outcome is ChargeOutcome.declined:
        return ChargeDecision.pending_until(now_us, ok=False)
    return decision


class SandboxFunding:
    """The sandbox processor: decisions follow the method's stored behaviour (see the table)."""

    def charge(
        self, method: PaymentMethod, amount: Money, reference: str, now_us: int
    ) -> ChargeDecision:
        assert amount.is_positive, "a charge is for a positive amount"
        if method.kind is PaymentMethodKind.card:
            return _card_decision(method, now_us)
        if method.kind is PaymentMethodKind.bank:
            ok = method.behaviour is CardBehaviour.succeed
            return ChargeDecision.pending_until(now_us + BANK_TRANSFER_DELAY_US, ok=ok)
        return ChargeDecision.success()


def _card_decision(method: PaymentMethod, now_us: int) -> ChargeDecision:
    assert method.exp_month is not None
    assert method.exp_year is not None
    if card_expired(method.exp_month, method.exp_year, now_us):
        return ChargeDecision.decline(EXPIRED_REASON)
    if method.behaviour is CardBehaviour.decline:
        return ChargeDecision.decline(DECLINED_REASON)
    if method.behaviour is CardBehaviour.fail_later:
        return ChargeDecision.pending_until(now_us + CARD_FAILURE_DELAY_US, ok=False)
    return ChargeDecision.success()

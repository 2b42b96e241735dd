"""Instrument set-ups for the sandbox, the benchmarks, the checker and the tests (issue #15).

A merchant issuing an instrument to a buyer, as the hosted SetupPrepaid / SetupPostpaid
pipelines do once the buyer agrees: :func:`prepaid_setup` and :func:`postpaid_setup` build the
:class:`~penny.services.payments.SetupPrepaid` / :class:`~penny.services.payments.SetupPostpaid`
request (the merchant is both caller and recipient), for
:meth:`~penny.services.payments.Payments.setup_prepaid` / ``setup_postpaid`` to run.

``reference`` names the set-up's two caller references: a prefix ``R`` gives ``R-sender`` and
``R-funding`` (prepaid) or ``R-settlement`` (postpaid); a pair gives both as they are.
:func:`sender_token_setup` builds the SetupSenderToken of a SingleUse, MultiUse or Recurring
token (issue #19), for :meth:`~penny.services.payments.Payments.setup_sender_token`.
``penny sandbox setup-prepaid``/``setup-postpaid``, ``penny bench http``'s seed,
``penny bench gatekeeper``, ``penny check bank`` and ``tests/builders.py`` build through here.
"""

from __future__ import annotations

from penny.clock import MICROS_PER_DAY
from penny.domain.model import AmountType, TokenKind, UsageLimitTerm
from penny.money import Money
from penny.services.payments import SetupPostpaid, SetupPrepaid, SetupSenderToken

__all__ = [
    "Reference",
    "postpaid_setup",
    "prepaid_setup",
    "sender_token_setup",
    "valid_for_days",
]

#: A prefix (``R`` → ``R-sender`` and ``R-funding``/``R-settlement``) or both references.
Reference = str | tuple[str, str]


def valid_for_days(now_us: int, days: int) -> int:
    """The ``valid_until`` of an instrument issued at ``now_us`` for ``days`` days."""
    return now_us + days * MICROS_PER_DAY


def _references(reference: Reference, second: str) -> tuple[str, str]:
    if isinstance(reference, tuple):
        return reference
    return f"{reference}-sender", f"{reference}-{second}"


def prepaid_setup(
    merchant_id: str,
    buyer_id: str,
    method_id: str,
    reference: Reference,
    *,
    funding_limit: Money | None = None,
    valid_from: int | None = None,
    valid_until: int | None = None,
    payment_reason: str = "",
) -> SetupPrepaid:
    """The SetupPrepaid of ``merchant_id`` issuing to ``buyer_id``, funded by ``method_id``."""
    sender, funding = _references(reference, "funding")
    return SetupPrepaid(
        caller_id=merchant_id,
        recipient_id=merchant_id,
        sender_id=buyer_id,
        payment_method_id=method_id,
        caller_reference_sender=sender,
        caller_reference_funding=funding,
        funding_limit=funding_limit,
        valid_from=valid_from,
        valid_until=valid_until,
        payment_reason=payment_reason,
    )


def postpaid_setup(
    merchant_id: str,
    buyer_id: str,
    method_id: str,
    reference: Reference,
    *,
    credit_limit: Money,
    global_amount_limit: Money | None = None,
    min_charge: Money | None = None,
    max_charge: Money | None = None,
    valid_from: int | None = None,
    valid_until: int | None = None,
    payment_reason: str = "",
) -> SetupPostpaid:
    """The SetupPostpaid of ``merchant_id`` opening credit for ``buyer_id``, settled by
    ``method_id``."""
    sender, settlement = _references(reference, "settlement")
    return SetupPostpaid(
        caller_id=merchant_id,
        recipient_id=merchant_id,
        sender_id=buyer_id,
        payment_method_id=method_id,
        caller_reference_sender=sender,
        caller_reference_settlement=settlement,
        credit_limit=credit_limit,
        global_amount_limit=global_amount_limit,
        min_charge=min_charge,
        max_charge=max_charge,
        valid_from=valid_from,
        valid_until=valid_until,
        payment_reason=payment_reason,
    )


def sender_token_setup(
    merchant_id: str,
    buyer_id: str,
    method_id: str,
    reference: str,
    kind: TokenKind,
    *,
    currency: str = "USD",
    transaction_amount: Money | None = None,
    amount_type: AmountType | None = None,
    global_amount_limit: Money | None = None,
    usage_limits: tuple[UsageLimitTerm, ...] = (),
    recurring_period: str | None = None,
    reserve: bool = False,
    valid_from: int | None = None,
    valid_until: int | None = None,
    payment_reason: str = "",
) -> SetupSenderToken:
    """The SingleUse, MultiUse or Recurring token (``kind``) ``buyer_id`` gives
    ``merchant_id`` on ``method_id``, under the caller reference ``reference``."""
    return SetupSenderToken(
        caller_id=merchant_id,
        recipient_id=merchant_id,
        sender_id=buyer_id,
        payment_method_id=method_id,
        caller_reference=reference,
        kind=kind,
        currency=currency,
        transaction_amount=transaction_amount,
        amount_type=amount_type,
        global_amount_limit=global_amount_limit,
        usage_limits=usage_limits,
        recurring_period=recurring_period,
        reserve=reserve,
        valid_from=valid_from,
        valid_until=valid_until,
        payment_reason=payment_reason,
    )

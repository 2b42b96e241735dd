"""Subscriptions (issue #19) on both stores: a Recurring token seen as a subscription
(GetSubscriptionDetails, GetTransactionsForSubscription) and CancelSubscriptionAndRefund —
worked examples with hand-computed balances, atomicity (a refused refund cancels nothing),
idempotency (a retry returns the first refund; the same reference with other content is
refused), and who may ask.

Fees are flat (``test_sender_tokens``' world: card 50¢, bank 20¢, balance 5¢); a refund gives
back the fee's share, rounded down: ``fee × refund // amount``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import test_sender_tokens
from builders import new_merchant, new_shop, open_store, usd
from penny.clock import MICROS_PER_DAY
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Status, TokenKind, TokenStatus, Transaction
from penny.domain.subscriptions import Frequency, SubscriptionStatus, frequency
from penny.fps.actions import run_action
from penny.fps.wire import WireFault
from penny.gatekeeper.usage import add_months
from penny.services import subscriptions as subs
from penny.services.payments import PayRequest
from penny.services.subscriptions import CancelSubscription
from penny.storage import ipn_sql
from test_sender_tokens import World

#: The fixture of ``test_sender_tokens``: its world, fees and clean-audit check.
world = test_sender_tokens.world
MONTHLY: dict[str, Any] = {"transaction_amount": "10", "recurring_period": "1 Month"}


def _cancel(
    world: World, token_id: str, amount: str | None = None, ref: str | None = None
) -> Transaction | None:
    request = CancelSubscription(
        world.merchant.id, token_id, None if amount is None else usd(amount), ref, "moved away"
    )
    return subs.cancel_and_refund(world.services.payments, request)


def _refused(
    world: World, token_id: str, amount: str | None = None, ref: str | None = None
) -> Refusal:
    with pytest.raises(PaymentsError) as refused:
        _cancel(world, token_id, amount, ref)
    return refused.value.refusal


def _buyer_balance(world: World) -> int:
    account = world.buyer.balance_account_id
    assert account is not None
    balance = world.services.ledger.balance(account)
    assert balance is not None
    return balance.net_credit_posted


def _token_status(world: World, token_id: str) -> TokenStatus:
    return world.services.payments.token_by_caller(world.merchant.id, token_id=token_id).status


def test_cancel_and_refund_part_of_the_last_month_worked_example(world: World) -> None:
    world.deposit(5000)  # $50.00 on the buyer's Penny balance
    made = world.token(TokenKind.recurring, method=world.balance, **MONTHLY)
    token_id = made.token.id
    first = world.pay(made, "10", "month-1")  # balance 40.00; payable 9.95; fees 0.05
    world.clock.advance(31 * MICROS_PER_DAY)
    second = world.pay(made, "10", "month-2")  # balance 30.00; payable 19.90; fees 0.10
    assert (_buyer_balance(world), world.payable(), world.fees_collected()) == (3000, (1990, 0), 10)
    refund = _cancel(world, token_id, "4", "cancel-1")
    assert refund is not None
    # $4 of the second month back; the fee's share 5 × 400 // 1000 = 2¢ comes back from fees.
    assert (refund.parent_id, refund.amount, refund.status) == (second.id, 400, Status.success)
    assert refund.caller_description == "moved away"
    assert _buyer_balance(world) == 3400
    assert world.payable() == (1990 - (400 - 2), 0)
    assert world.fees_collected() == 8
    assert _token_status(world, token_id) is TokenStatus.inactive
    # A retry answers the first refund and moves nothing.
    again = _cancel(world, token_id, "4", "cancel-1")
    assert again is not None
    assert again.id == refund.id
    assert (_buyer_balance(world), world.payable(), world.fees_collected()) == (3400, (1592, 0), 8)
    # The same reference with other content is refused, and changes nothing either.
    assert _refused(world, token_id, "3", "cancel-1") is Refusal.duplicate_request
    assert world.refused(made, "10", "month-3") is Refusal.token_not_active
    found = subs.subscription(world.services.payments, world.merchant.id, token_id)
    assert found.status is SubscriptionStatus.cancelled
    assert [p.id for p in found.pays] == [first.id, second.id]
    assert (found.processed, found.next_payment_date) == (2, None)


def test_without_an_amount_the_last_pay_is_refunded_once_it_has_completed(world: World) -> None:
    world.services.directory.set_ipn_url(world.merchant.id, "https://shop.example/ipn")
    made = world.token(TokenKind.recurring, **MONTHLY)  # on the card: Pending first
    token_id = made.token.id
    pay = world.pay(made, "10", "month-1")
    assert pay.status is Status.pending
    # The card has not answered: the refund is refused, so the subscription stays active.
    assert _refused(world, token_id) is Refusal.original_not_complete
    assert _token_status(world, token_id) is TokenStatus.active
    world.complete()
    assert world.payable() == (1000 - 50, 0)
    refund = _cancel(world, token_id)
    assert refund is not None
    assert (refund.parent_id, refund.amount) == (pay.id, 1000)  # all of it, the fee with it
    assert world.payable() == (0, 0)
    assert world.fees_collected() == 0
    assert _token_status(world, token_id) is TokenStatus.inactive
    again = _cancel(world, token_id)  # a retry: the refund keyed by the subscription
    assert again is not None
    assert again.id == refund.id
    with world.services.database.read() as conn:
        notes = ipn_sql.listing(conn, subject_id=token_id)
    assert [n.kind for n in notes] == ["TokenCancellation"]  # as CancelToken sends, once


def test_a_refused_refund_cancels_nothing(world: World) -> None:
    made = world.token(TokenKind.recurring, method=world.balance, **MONTHLY)
    token_id = made.token.id
    assert _refused(world, token_id, "1", "early") is Refusal.invalid_params  # no payment yet
    world.deposit(2000)
    world.pay(made, "10", "month-1")
    assert _refused(world, token_id, "10.01", "too-much") is Refusal.refund_exceeds_original
    assert _token_status(world, token_id) is TokenStatus.active
    assert (_buyer_balance(world), world.payable()) == (1000, (995, 0))
    world.clock.advance(31 * MICROS_PER_DAY)
    world.pay(made, "10", "month-2")  # still active: the second month is paid


def test_no_payment_or_nothing_left_cancels_without_a_refund(world: World) -> None:
    unused = world.token(TokenKind.recurring, "unused", **MONTHLY)
    assert _cancel(world, unused.token.id) is None
    assert _token_status(world, unused.token.id) is TokenStatus.inactive
    declined = world.token(TokenKind.recurring, "declined", method=world.declined_card, **MONTHLY)
    world.pay(declined, "10", "declined-1")
    world.complete()  # the card declines: the last Pay failed, nothing to refund
    assert _cancel(world, declined.token.id) is None
    assert _token_status(world, declined.token.id) is TokenStatus.inactive


def test_only_the_callers_recurring_tokens_are_subscriptions(world: World) -> None:
    made = world.token(TokenKind.recurring, **MONTHLY)
    multi = world.token(TokenKind.multi_use, "multi", global_amount_limit="10")
    other = new_merchant(world.services, "Elsewhere", "else@example.com")
    payments = world.services.payments
    for caller, token_id in ((other.id, made.token.id), (world.merchant.id, multi.token.id)):
        with pytest.raises(PaymentsError) as refused:
            subs.subscription(payments, caller, token_id)
        assert refused.value.refusal is Refusal.unknown_subscription
        with pytest.raises(PaymentsError) as refused:
            subs.cancel_and_refund(payments, CancelSubscription(caller, token_id))
        assert refused.value.refusal is Refusal.unknown_subscription
    answer = run_action(
        payments,
        world.services.directory,
        other.id,
        "GetSubscriptionDetails",
        "2010-08-28",
        {"SubscriptionId": made.token.id},
    )
    assert isinstance(answer, WireFault)
    assert (answer.code, answer.http_status) == ("InvalidParams", 400)
    assert _token_status(world, made.token.id) is TokenStatus.active


def test_details_follow_the_token_through_its_life(world: World) -> None:
    made = world.token(TokenKind.recurring, method=world.balance, **MONTHLY)
    start = made.instrument.valid_from
    ending = world.token(
        TokenKind.recurring, "ending", valid_until=start + 10 * MICROS_PER_DAY, **MONTHLY
    )
    payments, merchant = world.services.payments, world.merchant.id
    found = subs.subscription(payments, merchant, made.token.id)
    assert found.status is SubscriptionStatus.active
    assert (found.amount, found.processed) == (usd("10"), 0)
    assert found.next_payment_date == add_months(start, 1)
    short = subs.subscription(payments, merchant, ending.token.id)
    assert short.status is SubscriptionStatus.active
    assert short.next_payment_date is None  # the next period would start after the end
    world.deposit(1000)
    world.clock.advance(40 * MICROS_PER_DAY)
    world.pay(made, "10", "month-2")
    found = subs.subscription(payments, merchant, made.token.id)
    assert (found.processed, found.next_payment_date) == (1, add_months(start, 2))
    short = subs.subscription(payments, merchant, ending.token.id)
    assert (short.status, short.next_payment_date) == (SubscriptionStatus.completed, None)


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("1 Month", Frequency(1, "month")),
        ("7 Days", Frequency(7, "day")),
        ("2 weeks", Frequency(2, "week")),
        ("1 Year", Frequency(1, "year")),
        ("48 Hours", Frequency(2, "day")),
        ("5 hours", Frequency(5, "hour")),
    ],
)
def test_the_frequency_is_an_fps_duration(period: str, expected: Frequency) -> None:
    assert frequency(period) == expected


def test_two_cancels_at_once_refund_and_notify_once(database_url: str) -> None:
    """Two processes (two services: one Ledger serialises its own writers) cancel the same
    subscription at the same moment: one refund, one TokenCancellation IPN, same answers."""
    services = open_store(database_url)
    other = open_store(database_url, clock=services.clock, server_key=services.server_key)
    try:
        shop = new_shop(services, bank=False)
        services.directory.set_ipn_url(shop.merchant.id, "https://shop.example/ipn")
        made = shop.token(TokenKind.recurring, **MONTHLY)
        pay = services.payments.execute(
            PayRequest(shop.merchant.id, "month-1", made.token.id, usd("10"))
        )
        services.payments.complete_due()
        start = threading.Barrier(2)
        answers: list[Transaction | None] = [None, None]

        def cancel(slot: int) -> None:
            payments = (services.payments, other.payments)[slot]
            start.wait()
            answers[slot] = subs.cancel_and_refund(
                payments, CancelSubscription(shop.merchant.id, made.token.id)
            )

        threads = [threading.Thread(target=cancel, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        first, second = answers
        assert first is not None
        assert second is not None
        assert (first.id, first.parent_id, first.amount) == (second.id, pay.id, 1000)
        with services.database.read() as conn:
            notes = ipn_sql.listing(conn, subject_id=made.token.id)
        assert [n.kind for n in notes] == ["TokenCancellation"]
        assert services.ledger.audit().ok
    finally:
        other.database.dispose()
        services.database.dispose()

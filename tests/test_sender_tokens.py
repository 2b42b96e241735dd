"""SingleUse, MultiUse and Recurring sender tokens (issue #19) on both stores: issuing them,
Pay through the sandbox FundingSource (card pending then final, bank pending four days, the
balance at once), their limits and validity, the ledger's legs with hand-computed balances,
and the token queries.

Fees are flat (card 50¢, bank 20¢, balance 5¢) so every balance below is computed by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from builders import (
    DECLINED_CARD,
    LATE_FAILING_CARD,
    RETURNED_BANK_ACCOUNT,
    BuyerWorld,
    add_bank,
    add_card,
    flat_fee_parties,
    new_merchant,
    refusal,
    sender_token,
    usd,
)
from penny.clock import MICROS_PER_DAY
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.model import (
    AmountType,
    InstrumentKind,
    Status,
    StatusCode,
    TokenKind,
    Transaction,
    UsageLimitTerm,
    UsageLimitType,
)
from penny.domain.parties import PaymentMethod
from penny.ledger.model import Leg, NewJournal
from penny.services import instructions
from penny.services.payments import PayRequest, RefundRequest, SenderTokenSetup
from penny.storage import ipn_sql, terms_sql

MICROS_PER_HOUR = 3_600 * 1_000_000


@dataclass
class World(BuyerWorld):
    declined_card: PaymentMethod
    late_card: PaymentMethod
    bank: PaymentMethod
    returned_bank: PaymentMethod
    balance: PaymentMethod

    def token(
        self, kind: TokenKind, ref: str = "t", method: PaymentMethod | None = None, **terms: Any
    ) -> SenderTokenSetup:
        return sender_token(
            self.services.payments,
            self.merchant.id,
            self.buyer.id,
            (method or self.card).id,
            ref,
            kind,
            **terms,
        )

    def pay(self, token: SenderTokenSetup, amount: str, ref: str) -> Transaction:
        request = PayRequest(self.merchant.id, ref, token.token.id, usd(amount))
        return self.services.payments.execute(request)

    def refused(self, token: SenderTokenSetup, amount: str, ref: str) -> Refusal:
        request = PayRequest(self.merchant.id, ref, token.token.id, usd(amount))
        return refusal(self.services.payments, request)

    def payable(self) -> tuple[int, int]:
        """The merchant's payable balance: posted, and pending in."""
        balance = self.services.payments.account_balance(self.merchant.id)
        return balance.total.minor, balance.pending_in.minor

    def complete(self) -> list[Transaction]:
        return self.services.payments.complete_due()

    def status(self, txn: Transaction) -> tuple[Status, StatusCode]:
        found = self.services.payments.transaction(self.merchant.id, txn.id)
        return found.status, found.status_code

    def deposit(self, minor: int) -> None:
        """Money on the buyer's balance, straight through the ledger (as a deposit would)."""
        chart = self.services.payments.chart()
        account = self.buyer.balance_account_id
        assert account is not None
        legs = (Leg(chart.external_funding, minor, "USD"), Leg(account, -minor, "USD"))
        (outcome,) = self.services.ledger.execute([NewJournal("test", f"deposit-{minor}", legs)])
        assert outcome.ok

    def fees_collected(self) -> int:
        chart = self.services.payments.chart()
        balance = self.services.ledger.balance(chart.fees)
        assert balance is not None
        return balance.net_credit_posted


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    services, clock, merchant, buyer = flat_fee_parties(database_url)
    balance = next(
        m for m in services.directory.payment_methods(buyer.id) if m.kind.value == "balance"
    )
    yield World(
        services,
        clock,
        merchant,
        buyer,
        add_card(services, buyer.id),
        add_card(services, buyer.id, DECLINED_CARD),
        add_card(services, buyer.id, LATE_FAILING_CARD),
        add_bank(services, buyer.id),
        add_bank(services, buyer.id, RETURNED_BANK_ACCOUNT),
        balance,
    )
    assert services.ledger.audit().ok, "every test leaves a clean audit"
    services.database.dispose()


# -- issuing -------------------------------------------------------------------------------


def test_a_single_use_token_is_valid_three_hours_and_pays_once_by_card(world: World) -> None:
    made = world.token(TokenKind.single_use, transaction_amount="5.00")
    assert made.token.kind is TokenKind.single_use
    assert made.token.kind.fps_type == "SingleUse"
    assert made.instrument.kind is InstrumentKind.authorization
    assert made.instrument.valid_until == made.instrument.valid_from + 3 * MICROS_PER_HOUR
    assert made.instrument.max_charge == 500
    assert made.terms.transaction_amount == 500
    assert not made.terms.reserve

    txn = world.pay(made, "4.00", "pay-1")
    # A card answers Pending first: $4.00 less the 50¢ fee waits in the merchant's pending in.
    assert (txn.status, txn.status_code) == (Status.pending, StatusCode.pending_network_response)
    assert (txn.method, txn.fees, txn.amount) == (Method.card, 50, 400)
    assert world.payable() == (0, 350)
    assert world.refused(made, "1.00", "pay-2") is Refusal.token_used_already

    (done,) = world.complete()
    assert done.id == txn.id
    assert world.status(txn) == (Status.success, StatusCode.success)
    assert world.payable() == (350, 0)
    assert world.fees_collected() == 50


def test_single_use_refusals_amount_and_expiry(world: World) -> None:
    made = world.token(TokenKind.single_use, transaction_amount="5.00")
    assert world.refused(made, "5.01", "pay-1") is Refusal.amount_above_maximum
    world.clock.advance(3 * MICROS_PER_HOUR)
    assert world.refused(made, "1.00", "pay-2") is Refusal.instrument_expired
    assert world.payable() == (0, 0)


def test_a_declining_card_is_pending_then_failure(world: World) -> None:
    made = world.token(TokenKind.multi_use, method=world.declined_card, global_amount_limit="10")
    txn = world.pay(made, "3.00", "pay-1")
    assert txn.status is Status.pending
    assert world.payable() == (0, 250)
    world.complete()
    assert world.status(txn) == (Status.failure, StatusCode.transaction_denied)
    assert world.payable() == (0, 0)
    assert world.fees_collected() == 0
    # The failed payment no longer counts toward the global amount limit: $10 still fits.
    assert world.pay(made, "10.00", "pay-2").status is Status.pending


def test_a_late_failing_card_fails_after_a_day(world: World) -> None:
    made = world.token(TokenKind.single_use, method=world.late_card, transaction_amount="2")
    txn = world.pay(made, "2", "pay-1")
    assert world.complete() == []
    world.clock.advance(MICROS_PER_DAY)
    world.complete()
    assert world.status(txn)[0] is Status.failure


def test_a_bank_payment_is_pending_for_four_days(world: World) -> None:
    made = world.token(TokenKind.multi_use, method=world.bank, global_amount_limit="100")
    txn = world.pay(made, "10.00", "pay-1")
    assert (txn.status, txn.method, txn.fees) == (Status.pending, Method.bank, 20)
    world.clock.advance(4 * MICROS_PER_DAY - 1)
    assert world.complete() == []
    assert world.payable() == (0, 980)
    world.clock.advance(1)
    world.complete()
    assert world.status(txn)[0] is Status.success
    assert world.payable() == (980, 0)
    returned = world.token(TokenKind.multi_use, "r", world.returned_bank, global_amount_limit="9")
    bounced = world.pay(returned, "9", "pay-2")
    world.clock.advance(4 * MICROS_PER_DAY)
    world.complete()
    assert world.status(bounced)[0] is Status.failure
    assert world.payable() == (980, 0)


def test_the_balance_pays_at_once_when_it_is_there(world: World) -> None:
    made = world.token(TokenKind.multi_use, method=world.balance, global_amount_limit="50")
    assert world.refused(made, "1.00", "pay-1") is Refusal.insufficient_balance
    world.deposit(2000)
    txn = world.pay(made, "12.00", "pay-2")
    assert (txn.status, txn.method, txn.fees) == (Status.success, Method.balance, 5)
    assert world.payable() == (1195, 0)
    assert world.services.payments.account_balance(world.buyer.id).total.minor == 800
    assert world.refused(made, "8.01", "pay-3") is Refusal.insufficient_balance


def test_multi_use_limits_amount_type_global_and_usage(world: World) -> None:
    made = world.token(
        TokenKind.multi_use,
        transaction_amount="1.00",
        amount_type=AmountType.minimum,
        global_amount_limit="10",
        usage_limits=(
            UsageLimitTerm(UsageLimitType.count, 2, "1 Day"),
            UsageLimitTerm(UsageLimitType.amount, 500, "1 Week"),
        ),
    )
    assert (made.instrument.min_charge, made.instrument.max_charge) == (100, None)
    assert world.refused(made, "0.99", "p0") is Refusal.amount_below_minimum
    world.pay(made, "2.00", "p1")
    world.pay(made, "2.00", "p2")
    assert world.refused(made, "1.00", "p3") is Refusal.token_usage_exceeded  # 2 a day
    world.clock.advance(MICROS_PER_DAY)
    assert world.refused(made, "1.01", "p4") is Refusal.token_usage_exceeded  # $5 a week
    world.pay(made, "1.00", "p5")
    world.clock.advance(7 * MICROS_PER_DAY)
    world.pay(made, "4.00", "p6")
    assert world.refused(made, "1.01", "p7") is Refusal.token_usage_exceeded  # $10 in all
    world.complete()
    assert world.payable() == (900 - 4 * 50, 0)


def test_recurring_pays_once_per_period(world: World) -> None:
    made = world.token(TokenKind.recurring, transaction_amount="9.99", recurring_period="1 Month")
    assert made.token.kind.fps_type == "Recurring"
    assert made.instrument.valid_until is None
    world.pay(made, "9.99", "month-1")
    world.clock.advance(10 * MICROS_PER_DAY)
    assert world.refused(made, "9.99", "month-1b") is Refusal.token_usage_exceeded
    world.clock.advance(25 * MICROS_PER_DAY)
    assert world.refused(made, "10.00", "month-2a") is Refusal.amount_above_maximum
    world.pay(made, "9.99", "month-2")
    world.complete()
    assert world.payable() == (2 * (999 - 50), 0)


def test_cancelled_tokens_and_other_callers(world: World) -> None:
    made = world.token(TokenKind.multi_use, global_amount_limit="10")
    other = new_merchant(world.services, "Elsewhere", "else@example.com")
    request = PayRequest(other.id, "x-1", made.token.id, usd("1"))
    (result,) = world.services.payments.submit([request])
    assert isinstance(result, PaymentsError)
    assert result.refusal is Refusal.unknown_token
    world.services.payments.cancel_token(world.merchant.id, made.token.id)
    assert world.refused(made, "1", "pay-1") is Refusal.token_not_active


def test_a_reserve_token_is_not_for_pay(world: World) -> None:
    made = world.token(TokenKind.single_use, transaction_amount="5", reserve=True)
    assert made.terms.reserve
    assert "OperationType == 'Reserve'" in (made.token.script or "")
    assert world.refused(made, "5", "pay-1") is Refusal.wrong_token_type


def test_issuing_is_idempotent_on_the_caller_reference(world: World) -> None:
    weekly: dict[str, Any] = {"recurring_period": "7 Days"}
    first = world.token(TokenKind.recurring, "sub", transaction_amount="5", **weekly)
    again = world.token(TokenKind.recurring, "sub", transaction_amount="5", **weekly)
    assert again.token == first.token
    assert again.terms == first.terms
    with pytest.raises(PaymentsError) as refused:
        world.token(TokenKind.recurring, "sub", transaction_amount="6", **weekly)
    assert refused.value.refusal is Refusal.duplicate_request
    with world.services.database.read() as conn:
        assert terms_sql.load_terms(conn, [first.token.id]) == {first.token.id: first.terms}


@pytest.mark.parametrize(
    ("kind", "terms", "field"),
    [
        (TokenKind.single_use, {}, "transactionAmount"),
        (TokenKind.recurring, {"transaction_amount": "1"}, "recurringPeriod"),
        (
            TokenKind.recurring,
            {"transaction_amount": "1", "recurring_period": "1 Fortnight"},
            "recurringPeriod",
        ),
        (TokenKind.multi_use, {}, "globalAmountLimit"),
        (TokenKind.single_use, {"transaction_amount": "1", "recurring_period": "1 Day"}, None),
        (TokenKind.multi_use, {"global_amount_limit": "1", "reserve": True}, "reserve"),
    ],
)
def test_each_kind_requires_its_terms(
    world: World, kind: TokenKind, terms: dict[str, Any], field: str | None
) -> None:
    with pytest.raises(PaymentsError) as refused:
        world.token(kind, **terms)
    assert refused.value.refusal is Refusal.invalid_params
    if field is not None:
        assert field in (refused.value.detail or "")


def test_token_queries_show_the_new_kinds(world: World) -> None:
    single = world.token(TokenKind.single_use, "s", transaction_amount="1")
    multi = world.token(
        TokenKind.multi_use,
        "m",
        global_amount_limit="10",
        usage_limits=(UsageLimitTerm(UsageLimitType.count, 3, "1 Day"),),
    )
    payments = world.services.payments
    found = payments.token_by_caller(world.merchant.id, caller_reference="m")
    assert found.id == multi.token.id
    world.pay(multi, "2", "p1")
    usage = instructions.token_usage(payments, world.merchant.id, multi.token.id)
    assert usage is not None
    assert [(u.kind.value, u.count) for u in usage] == [("Count", 1)]
    with pytest.raises(PaymentsError) as refused:
        instructions.token_usage(payments, world.merchant.id, single.token.id)
    assert refused.value.refusal is Refusal.invalid_token_type


def test_refunds_go_back_to_the_payment_method_with_the_fees_share(world: World) -> None:
    made = world.token(TokenKind.multi_use, global_amount_limit="20")
    txn = world.pay(made, "10.00", "pay-1")
    refund = RefundRequest(world.merchant.id, "refund-0", txn.id, usd("1"))
    (early,) = world.services.payments.submit([refund])
    assert isinstance(early, PaymentsError)
    assert early.refusal is Refusal.original_not_complete
    world.complete()
    assert world.payable() == (950, 0)
    # $4 of $10 back: the fee's share is 50¢ × 4/10 = 20¢, so the payable gives $3.80.
    back = world.services.payments.execute(
        RefundRequest(world.merchant.id, "refund-1", txn.id, usd("4"))
    )
    assert (back.status, back.method, back.parent_id) == (Status.success, Method.card, txn.id)
    assert world.payable() == (570, 0)
    assert world.fees_collected() == 30
    # The refund gives room back under the global amount limit: $14 more fits in $20.
    world.pay(made, "14.00", "pay-2")
    world.complete()
    assert world.payable() == (570 + 1350, 0)


def test_a_balance_payment_is_refunded_to_the_balance(world: World) -> None:
    made = world.token(TokenKind.multi_use, method=world.balance, global_amount_limit="50")
    world.deposit(1000)
    txn = world.pay(made, "10.00", "pay-1")
    world.services.payments.execute(RefundRequest(world.merchant.id, "refund-1", txn.id))
    assert world.services.payments.account_balance(world.buyer.id).total.minor == 1000
    assert world.payable() == (0, 0)
    assert world.fees_collected() == 0


def test_an_ipn_for_the_pending_card_payment_and_one_for_its_answer(world: World) -> None:
    world.services.directory.set_ipn_url(world.merchant.id, "https://shop.example/ipn")
    made = world.token(TokenKind.single_use, transaction_amount="2.22")
    txn = world.pay(made, "2.22", "pay-1")
    world.complete()
    with world.services.database.read() as conn:
        found = ipn_sql.listing(conn, subject_id=txn.id)
    params = [dict(n.params) for n in found]
    sent = sorted((p["transactionStatus"], p["statusCode"]) for p in params)
    assert sent == [("PENDING", "PendingNetworkResponse"), ("SUCCESS", "Success")]
    assert {p["paymentMethod"] for p in params} == {"CC"}

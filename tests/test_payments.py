"""Worked examples of the Aggregated Payments operations, with hand-computed balances.

Every test runs on SQLite and PostgreSQL. Fees are fixed per method so the numbers are easy to
check by hand: a card costs $0.50 and a bank transfer $0.20 unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from builders import (
    DECLINED_CARD,
    LATE_FAILING_CARD,
    RETURNED_BANK_ACCOUNT,
    add_bank,
    add_card,
    manual_clock,
    new_buyer,
    new_merchant,
    open_store,
    postpaid,
    prepaid,
    quiet_payments,
    refusal,
    usd,
)
from penny.clock import MICROS_PER_DAY, ManualClock
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import FeeSchedule, Method
from penny.domain.model import (
    InstrumentKind,
    Operation,
    Status,
    TokenFilter,
    TokenKind,
    TokenStatus,
)
from penny.domain.parties import Party, PaymentMethod
from penny.engine.ledger import Ledger
from penny.money import Money
from penny.parties import Directory
from penny.sandbox.instruments import prepaid_setup
from penny.services.factory import Services
from penny.services.payments import (
    FundPrepaidRequest,
    InstrumentSetup,
    PaymentRequest,
    Payments,
    PayRequest,
    RefundRequest,
    SettleDebtRequest,
    SetupPrepaid,
    WriteOffDebtRequest,
)
from penny.storage.database import Database


@dataclass
class World:
    services: Services
    db: Database
    clock: ManualClock
    ledger: Ledger
    directory: Directory
    payments: Payments
    merchant: Party
    other_merchant: Party
    buyer: Party
    card: PaymentMethod
    declined_card: PaymentMethod
    late_failing_card: PaymentMethod
    bank: PaymentMethod
    returned_bank: PaymentMethod
    balance_method: PaymentMethod

    def prepaid(
        self, method: PaymentMethod | None = None, limit: str | None = "100", ref: str = "p"
    ) -> InstrumentSetup:
        method_id = (method or self.card).id
        return prepaid(self.payments, self.merchant.id, self.buyer.id, method_id, ref, limit=limit)

    def postpaid(
        self,
        method: PaymentMethod | None = None,
        limit: str = "100",
        ref: str = "c",
        **extra: Money | None,
    ) -> InstrumentSetup:
        method_id = (method or self.card).id
        return postpaid(
            self.payments,
            self.merchant.id,
            self.buyer.id,
            method_id,
            ref,
            limit=limit,
            **extra,  # type: ignore[arg-type]
        )

    def fund(self, setup: InstrumentSetup, amount: str | Money, ref: str) -> PaymentRequest:
        """FundPrepaid of ``amount`` (US dollars when a string) on ``setup``'s instrument."""
        money = usd(amount) if isinstance(amount, str) else amount
        return FundPrepaidRequest(
            self.merchant.id, ref, setup.second_token.id, setup.instrument.id, money
        )

    def pay(self, setup: InstrumentSetup, amount: str, ref: str) -> PayRequest:
        return PayRequest(self.merchant.id, ref, setup.sender_token.id, usd(amount))

    def refused(self, request: PaymentRequest) -> Refusal:
        return refusal(self.payments, request)

    def payable(self) -> int:
        return self.payments.account_balance(self.merchant.id).total.minor


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    fees = FeeSchedule.flat(card=50, bank=20, balance=5)
    services = open_store(database_url, fees=fees)
    clock = manual_clock(services)
    merchant = new_merchant(services).party
    other = new_merchant(services, "Elsewhere", "else@example.com").party
    buyer = new_buyer(services)
    directory = services.directory
    balance_method = next(
        m for m in directory.payment_methods(buyer.id) if m.kind.value == "balance"
    )
    yield World(
        services=services,
        db=services.database,
        clock=clock,
        ledger=services.ledger,
        directory=directory,
        payments=services.payments,
        merchant=merchant,
        other_merchant=other,
        buyer=buyer,
        card=add_card(services, buyer.id),
        declined_card=add_card(services, buyer.id, DECLINED_CARD),
        late_failing_card=add_card(services, buyer.id, LATE_FAILING_CARD),
        bank=add_bank(services, buyer.id),
        returned_bank=add_bank(services, buyer.id, RETURNED_BANK_ACCOUNT),
        balance_method=balance_method,
    )
    assert services.ledger.audit().ok, "every payments test must leave a clean audit"
    services.database.dispose()


# -- prepaid ------------------------------------------------------------------------------


def test_seed_prepaid_funding_ten_dollars_with_fifty_cent_fee(world: World) -> None:
    setup = world.prepaid()
    assert setup.instrument.kind is InstrumentKind.prepaid
    assert setup.sender_token.kind is TokenKind.prepaid_sender
    assert setup.second_token.kind is TokenKind.funding
    zero = world.payments.prepaid_balance(world.merchant.id, setup.instrument.id)
    assert (zero.main.minor, zero.pending.minor) == (0, 0)

    txn = world.payments.execute(world.fund(setup, "10", "fund-1"))

    assert (txn.status, txn.operation, txn.method) == (
        Status.success,
        Operation.fund_prepaid,
        Method.card,
    )
    assert (txn.amount, txn.fees) == (1000, 50)
    assert world.payable() == 950  # merchant +$9.50
    balance = world.payments.prepaid_balance(world.merchant.id, setup.instrument.id)
    assert balance.main == usd("10")  # prepaid balance +$10.00
    assert world.payments.total_prepaid_liability(world.merchant.id).main == usd("10")


def test_prepaid_pay_spends_down_by_one_cent_and_refuses_overspend(world: World) -> None:
    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "1", "fund-1"))
    first = world.payments.execute(world.pay(setup, "0.01", "pay-1"))
    second = world.payments.execute(world.pay(setup, "0.98", "pay-2"))
    assert (first.status, first.method, first.fees) == (Status.success, Method.prepaid, 0)
    assert second.status is Status.success
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd(
        "0.01"
    )

    assert world.refused(world.pay(setup, "0.02", "pay-3")) is Refusal.insufficient_balance
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd(
        "0.01"
    )
    # Nothing is remembered for a refused request: after funding, the same reference works.
    world.payments.execute(world.fund(setup, "1", "fund-2"))
    third = world.payments.execute(world.pay(setup, "0.02", "pay-3"))
    assert third.status is Status.success
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd(
        "0.99"
    )
    # The merchant's liability is the sum of balances; paying never touched its payable.
    assert world.payments.total_prepaid_liability(world.merchant.id).main == usd("0.99")
    assert world.payable() == 2 * (100 - 50)


def test_same_caller_reference_same_content_returns_the_original(world: World) -> None:
    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "5", "fund-1"))
    first = world.payments.execute(world.pay(setup, "1.25", "pay-1"))
    again = world.payments.execute(world.pay(setup, "1.25", "pay-1"))
    assert again.id == first.id
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd(
        "3.75"
    )
    assert world.refused(world.pay(setup, "1.26", "pay-1")) is Refusal.duplicate_request
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd(
        "3.75"
    )


def test_duplicates_inside_one_batch_have_one_effect(world: World) -> None:
    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "5", "fund-1"))
    results = world.payments.submit(
        [world.pay(setup, "1", "a"), world.pay(setup, "1", "a"), world.pay(setup, "2", "a")]
    )
    first, second, third = results
    assert not isinstance(first, PaymentsError)
    assert not isinstance(second, PaymentsError)
    assert second.id == first.id
    assert isinstance(third, PaymentsError)
    assert third.refusal is Refusal.duplicate_request
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd("4")


def test_a_refused_request_in_a_batch_leaves_its_neighbours_alone(world: World) -> None:
    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "3", "fund-1"))
    results = world.payments.submit(
        [world.pay(setup, "2", "a"), world.pay(setup, "2", "b"), world.pay(setup, "1", "c")]
    )
    assert [isinstance(r, PaymentsError) for r in results] == [False, True, False]
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd("0")


def test_funding_limit_counts_every_funding(world: World) -> None:
    setup = world.prepaid(limit="15")
    world.payments.execute(world.fund(setup, "10", "fund-1"))
    assert world.refused(world.fund(setup, "5.01", "fund-2")) is Refusal.funding_limit_exceeded
    world.payments.execute(world.fund(setup, "5", "fund-3"))
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd("15")


def test_declined_card_records_a_failed_transaction_and_moves_nothing(world: World) -> None:
    setup = world.prepaid(method=world.declined_card)
    txn = world.payments.execute(world.fund(setup, "10", "fund-1"))
    assert txn.status is Status.failure
    assert txn.status_code == "TransactionDenied"
    assert txn.fees == 0  # nothing was charged
    assert world.payable() == 0
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd("0")
    # A declined funding is still the transaction under that reference.
    assert world.payments.execute(world.fund(setup, "10", "fund-1")).id == txn.id


def test_bank_funding_is_pending_for_four_days(world: World) -> None:
    setup = world.prepaid(method=world.bank)
    txn = world.payments.execute(world.fund(setup, "10", "fund-1"))
    assert txn.status is Status.pending
    balance = world.payments.prepaid_balance(world.merchant.id, setup.instrument.id)
    assert (balance.main, balance.pending) == (usd("0"), usd("10"))
    assert world.refused(world.pay(setup, "0.01", "pay-1")) is Refusal.insufficient_balance
    assert world.payments.account_balance(world.merchant.id).pending_in == usd("9.80")

    world.clock.advance(4 * MICROS_PER_DAY - 1)
    assert world.payments.complete_due() == []
    world.clock.advance(1)
    (done,) = world.payments.complete_due()
    assert (done.id, done.status) == (txn.id, Status.success)
    balance = world.payments.prepaid_balance(world.merchant.id, setup.instrument.id)
    assert (balance.main, balance.pending) == (usd("10"), usd("0"))
    assert world.payable() == 980
    assert world.payments.transaction(world.merchant.id, txn.id).status is Status.success
    world.payments.execute(world.pay(setup, "0.01", "pay-1"))


def test_returned_bank_transfer_and_late_failing_card_release_the_hold(world: World) -> None:
    bank = world.prepaid(method=world.returned_bank, limit="20", ref="b")
    card = world.prepaid(method=world.late_failing_card, ref="c")
    by_bank = world.payments.execute(world.fund(bank, "20", "fund-bank"))
    by_card = world.payments.execute(world.fund(card, "10", "fund-card"))
    assert (by_bank.status, by_card.status) == (Status.pending, Status.pending)
    world.clock.advance(MICROS_PER_DAY)
    (failed_card,) = world.payments.complete_due()
    assert (failed_card.id, failed_card.status) == (by_card.id, Status.failure)
    world.clock.advance(3 * MICROS_PER_DAY)
    (failed_bank,) = world.payments.complete_due()
    assert failed_bank.status is Status.failure
    assert (failed_bank.fees, failed_card.fees) == (0, 0)
    assert world.payments.transaction(world.merchant.id, failed_bank.id).fees == 0
    for setup in (bank, card):
        balance = world.payments.prepaid_balance(world.merchant.id, setup.instrument.id)
        assert (balance.main, balance.pending) == (usd("0"), usd("0"))
    assert world.payable() == 0
    # The returned funding gives its room under the funding limit back.
    again = world.payments.execute(world.fund(bank, "20", "fund-bank-2"))
    assert again.status is Status.pending


def test_funding_from_the_buyers_balance_needs_the_balance(world: World) -> None:
    setup = world.prepaid(method=world.balance_method)
    assert world.refused(world.fund(setup, "1", "fund-1")) is Refusal.insufficient_balance


def test_expired_and_not_yet_valid_instruments(world: World) -> None:
    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "5", "fund-1"))
    world.clock.advance(30 * MICROS_PER_DAY)
    assert world.refused(world.pay(setup, "1", "pay-1")) is Refusal.instrument_expired
    assert world.refused(world.fund(setup, "1", "fund-2")) is Refusal.instrument_expired
    later = world.payments.setup_prepaid(
        prepaid_setup(
            world.merchant.id,
            world.buyer.id,
            world.card.id,
            ("later-s", "later-f"),
            valid_from=world.clock.now_us() + MICROS_PER_DAY,
        )
    )
    assert world.refused(world.fund(later, "1", "fund-3")) is Refusal.instrument_not_yet_valid


def test_cancelled_token_cannot_be_used(world: World) -> None:
    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "5", "fund-1"))
    cancelled = world.payments.cancel_token(world.merchant.id, setup.sender_token.id)
    assert cancelled.status is TokenStatus.inactive
    assert world.refused(world.pay(setup, "1", "pay-1")) is Refusal.token_not_active
    with pytest.raises(PaymentsError) as caught:
        world.payments.cancel_token(world.other_merchant.id, setup.second_token.id)
    assert caught.value.refusal is Refusal.unknown_token


def test_another_merchants_ids_look_unknown(world: World) -> None:
    setup = world.prepaid()
    txn = world.payments.execute(world.fund(setup, "5", "fund-1"))
    other = world.other_merchant.id
    stranger = PayRequest(other, "x", setup.sender_token.id, usd("1"))
    assert world.refused(stranger) is Refusal.unknown_token
    for call in (
        lambda: world.payments.prepaid_balance(other, setup.instrument.id),
        lambda: world.payments.transaction(other, txn.id),
        lambda: world.payments.token_by_caller(other, token_id=setup.sender_token.id),
    ):
        with pytest.raises(PaymentsError) as caught:
            call()
        assert caught.value.refusal in {
            Refusal.unknown_instrument,
            Refusal.unknown_transaction,
            Refusal.unknown_token,
        }
    refund = RefundRequest(other, "r", txn.id)
    assert world.refused(refund) is Refusal.unknown_transaction


def test_only_the_recipient_may_issue_an_instrument(world: World) -> None:
    with pytest.raises(PaymentsError) as caught:
        world.payments.setup_prepaid(
            SetupPrepaid(
                world.other_merchant.id,
                world.merchant.id,
                world.buyer.id,
                world.card.id,
                "m-s",
                "m-f",
                usd("10"),
            )
        )
    assert caught.value.refusal is Refusal.instrument_access_denied
    assert caught.value.fps.code == "InstrumentAccessDenied"


def test_setup_is_idempotent_by_its_caller_references(world: World) -> None:
    first = world.prepaid(ref="same")
    again = world.prepaid(ref="same")
    assert again.instrument.id == first.instrument.id
    assert again.sender_token.id == first.sender_token.id
    with pytest.raises(PaymentsError) as caught:
        world.prepaid(ref="same", limit="99")
    assert caught.value.refusal is Refusal.duplicate_request
    found = world.payments.token_by_caller(world.merchant.id, caller_reference="same-funding")
    assert found.id == first.second_token.id
    with pytest.raises(PaymentsError) as missing:
        world.payments.token_by_caller(world.merchant.id, caller_reference="nope")
    assert missing.value.refusal is Refusal.unknown_caller_reference


def test_refund_of_a_prepaid_pay_partial_then_rest(world: World) -> None:
    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "10", "fund-1"))
    pay = world.payments.execute(world.pay(setup, "3", "pay-1"))
    part = world.payments.execute(RefundRequest(world.merchant.id, "r1", pay.id, usd("1")))
    assert (part.operation, part.parent_id, part.amount) == (Operation.refund, pay.id, 100)
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd("8")
    over = RefundRequest(world.merchant.id, "r2", pay.id, usd("2.01"))
    assert world.refused(over) is Refusal.refund_exceeds_original
    rest = world.payments.execute(RefundRequest(world.merchant.id, "r3", pay.id))
    assert rest.amount == 200
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main == usd("10")
    assert world.refused(RefundRequest(world.merchant.id, "r4", pay.id)) is Refusal.fully_refunded
    assert [r.id for r in world.payments.refunds(world.merchant.id, pay.id)] == [part.id, rest.id]
    fund = world.payments.transaction(world.merchant.id, pay.id)
    assert fund.refunded == 300


def test_refund_of_a_funding_is_refused(world: World) -> None:
    setup = world.prepaid()
    fund = world.payments.execute(world.fund(setup, "10", "fund-1"))
    assert world.refused(RefundRequest(world.merchant.id, "r", fund.id)) is Refusal.not_refundable


# -- postpaid -----------------------------------------------------------------------------


def test_seed_postpaid_debt_settle_and_write_off(world: World) -> None:
    payments = quiet_payments(world.services, fees=FeeSchedule.flat(card=250))
    setup = world.postpaid(limit="100")
    assert setup.second_token.kind is TokenKind.settlement
    for i in range(10):
        txn = payments.execute(world.pay(setup, "10", f"pay-{i}"))
        assert (txn.method, txn.fees) == (Method.debt, 0)
    debt = payments.debt_balance(world.merchant.id, setup.instrument.id)
    assert debt.main == usd("100")
    assert world.refused(world.pay(setup, "0.01", "pay-over")) is Refusal.exceeds_instrument_limits

    settle = SettleDebtRequest(
        world.merchant.id, "settle-1", setup.second_token.id, setup.instrument.id, usd("90")
    )
    txn = payments.execute(settle)
    assert (txn.status, txn.fees) == (Status.success, 250)
    assert world.payable() == 8750  # merchant +$87.50
    assert payments.debt_balance(world.merchant.id, setup.instrument.id).main == usd("10")
    assert payments.outstanding_debt(world.merchant.id).main == usd("10")

    too_much = WriteOffDebtRequest(world.merchant.id, "wo-0", setup.instrument.id, usd("12"))
    assert world.refused(too_much) is Refusal.settle_exceeds_debt
    write_off = WriteOffDebtRequest(world.merchant.id, "wo-1", setup.instrument.id, usd("10"))
    assert payments.execute(write_off).status is Status.success
    assert payments.debt_balance(world.merchant.id, setup.instrument.id).main == usd("0")
    assert world.payable() == 8750  # a write-off moves no money


def test_write_off_of_twelve_reduces_the_debt_by_twelve(world: World) -> None:
    setup = world.postpaid(limit="100")
    world.payments.execute(world.pay(setup, "40", "pay-1"))
    world.payments.execute(
        WriteOffDebtRequest(world.merchant.id, "wo", setup.instrument.id, usd("12"))
    )
    assert world.payments.debt_balance(world.merchant.id, setup.instrument.id).main == usd("28")


def test_settling_more_than_the_debt_is_refused(world: World) -> None:
    setup = world.postpaid()
    world.payments.execute(world.pay(setup, "5", "pay-1"))
    settle = SettleDebtRequest(
        world.merchant.id, "s", setup.second_token.id, setup.instrument.id, usd("5.01")
    )
    assert world.refused(settle) is Refusal.settle_exceeds_debt
    assert world.payable() == 0


def test_bank_settlement_is_pending_and_reserves_the_debt(world: World) -> None:
    setup = world.postpaid(method=world.bank)
    world.payments.execute(world.pay(setup, "30", "pay-1"))
    settle = SettleDebtRequest(
        world.merchant.id, "s1", setup.second_token.id, setup.instrument.id, usd("30")
    )
    txn = world.payments.execute(settle)
    assert txn.status is Status.pending
    debt = world.payments.debt_balance(world.merchant.id, setup.instrument.id)
    assert (debt.main, debt.pending) == (usd("30"), usd("30"))
    second = SettleDebtRequest(
        world.merchant.id, "s2", setup.second_token.id, setup.instrument.id, usd("0.01")
    )
    assert world.refused(second) is Refusal.settle_exceeds_debt
    world.clock.advance(4 * MICROS_PER_DAY)
    world.payments.complete_due()
    debt = world.payments.debt_balance(world.merchant.id, setup.instrument.id)
    assert (debt.main, debt.pending) == (usd("0"), usd("0"))
    assert world.payable() == 3000 - 20


def test_postpaid_charge_limits(world: World) -> None:
    setup = world.postpaid(
        limit="100", global_amount_limit=usd("25"), min_charge=usd("1"), max_charge=usd("20")
    )
    assert world.refused(world.pay(setup, "0.99", "p0")) is Refusal.amount_below_minimum
    assert world.refused(world.pay(setup, "20.01", "p1")) is Refusal.amount_above_maximum
    world.payments.execute(world.pay(setup, "20", "p2"))
    assert world.refused(world.pay(setup, "5.01", "p3")) is Refusal.exceeds_instrument_limits
    world.payments.execute(world.pay(setup, "5", "p4"))


def test_refund_of_a_postpaid_pay_until_settled(world: World) -> None:
    setup = world.postpaid()
    first = world.payments.execute(world.pay(setup, "10", "pay-1"))
    world.payments.execute(RefundRequest(world.merchant.id, "r1", first.id, usd("4")))
    assert world.payments.debt_balance(world.merchant.id, setup.instrument.id).main == usd("6")
    world.clock.advance(1)
    settle = SettleDebtRequest(
        world.merchant.id, "s", setup.second_token.id, setup.instrument.id, usd("1")
    )
    world.payments.execute(settle)
    refused = RefundRequest(world.merchant.id, "r2", first.id, usd("1"))
    assert world.refused(refused) is Refusal.debt_already_settled
    world.clock.advance(1)
    later = world.payments.execute(world.pay(setup, "2", "pay-2"))
    world.payments.execute(RefundRequest(world.merchant.id, "r3", later.id))
    assert world.payments.debt_balance(world.merchant.id, setup.instrument.id).main == usd("5")
    settled = world.payments.transaction(world.merchant.id, later.id)
    assert settled.refunded == 200


def test_settle_debt_is_never_refundable(world: World) -> None:
    setup = world.postpaid()
    world.payments.execute(world.pay(setup, "10", "pay-1"))
    settle = world.payments.execute(
        SettleDebtRequest(
            world.merchant.id, "s", setup.second_token.id, setup.instrument.id, usd("5")
        )
    )
    assert world.refused(RefundRequest(world.merchant.id, "r", settle.id)) is Refusal.not_refundable


def test_wrong_token_for_the_operation(world: World) -> None:
    prepaid = world.prepaid()
    postpaid = world.postpaid()
    funding_as_sender = PayRequest(world.merchant.id, "x", prepaid.second_token.id, usd("1"))
    assert world.refused(funding_as_sender) is Refusal.wrong_token_type
    mixed = FundPrepaidRequest(
        world.merchant.id, "y", prepaid.second_token.id, postpaid.instrument.id, usd("1")
    )
    assert world.refused(mixed) is Refusal.unknown_instrument


# -- queries ------------------------------------------------------------------------------


def test_amount_validation(world: World) -> None:
    setup = world.prepaid()
    assert world.refused(world.fund(setup, "0", "zero")) is Refusal.invalid_amount
    wrong_currency = world.fund(setup, Money(100, "EUR"), "eur")
    assert world.refused(wrong_currency) is Refusal.invalid_currency
    huge = world.fund(setup, "1000000.01", "huge")
    assert world.refused(huge) is Refusal.amount_out_of_range


def test_account_activity_pages_and_filters(world: World) -> None:
    setup = world.prepaid()
    start = world.clock.now_us()
    world.payments.execute(world.fund(setup, "10", "fund-1"))
    for i in range(5):
        world.clock.advance(1_000)
        world.payments.execute(world.pay(setup, "1", f"pay-{i}"))
    page, next_start = world.payments.activity(world.merchant.id, start=start, max_batch=4)
    assert len(page) == 4
    assert [t.caller_reference for t in page] == ["pay-4", "pay-3", "pay-2", "pay-1"]
    assert next_start is not None
    rest, after = world.payments.activity(
        world.merchant.id, start=start, end=next_start + 1, max_batch=4
    )
    assert [t.caller_reference for t in rest] == ["pay-0", "fund-1"]
    assert after is None
    funds, _ = world.payments.activity(
        world.merchant.id, start=start, operation=Operation.fund_prepaid
    )
    assert [t.caller_reference for t in funds] == ["fund-1"]
    as_sender, _ = world.payments.activity(
        world.buyer.id, start=start, roles=["Sender"], max_batch=200
    )
    assert len(as_sender) == 6
    with pytest.raises(PaymentsError) as caught:
        world.payments.activity(world.merchant.id, start=start, end=start - 1)
    assert caught.value.refusal is Refusal.invalid_date_range


def test_token_listing_and_usage(world: World) -> None:
    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "10", "fund-1"))
    world.payments.execute(world.pay(setup, "1.50", "pay-1"))
    world.payments.execute(world.pay(setup, "2", "pay-2"))
    tokens = world.payments.tokens(world.merchant.id)
    assert {t.id for t in tokens} == {setup.sender_token.id, setup.second_token.id}
    active = world.payments.tokens(world.merchant.id, TokenFilter(status=TokenStatus.inactive))
    assert active == []
    usage = world.payments.token_usage(world.merchant.id, setup.sender_token.id)
    assert (usage.amount, usage.count) == (usd("3.50"), 2)
    assert world.payments.tokens(world.other_merchant.id) == []


def test_merchant_withdraws_its_payable_balance_in_four_days(world: World) -> None:
    from penny.services.payments import WithdrawRequest

    setup = world.prepaid()
    world.payments.execute(world.fund(setup, "10", "fund-1"))  # payable $9.50
    too_much = WithdrawRequest(world.merchant.id, "w0", usd("9.51"))
    assert world.refused(too_much) is Refusal.insufficient_balance
    txn = world.payments.execute(WithdrawRequest(world.merchant.id, "w1", usd("9")))
    assert (txn.status, txn.operation) == (Status.pending, Operation.withdraw)
    balance = world.payments.account_balance(world.merchant.id)
    assert (balance.total, balance.pending_out, balance.disburse) == (
        usd("9.50"),
        usd("9"),
        usd("0.50"),
    )
    assert world.refused(WithdrawRequest(world.merchant.id, "w2", usd("0.51"))) is (
        Refusal.insufficient_balance
    )
    world.clock.advance(4 * MICROS_PER_DAY)
    (done,) = world.payments.complete_due()
    assert (done.id, done.status) == (txn.id, Status.success)
    assert world.payable() == 50
    buyer_try = WithdrawRequest(world.buyer.id, "w3", usd("1"))
    assert world.refused(buyer_try) is Refusal.invalid_params

"""Reserve, Settle and Cancel (issue #19): worked examples with hand-computed balances.

Every test runs on SQLite and PostgreSQL. A card funding costs $0.50; a prepaid reserve, like a
prepaid Pay, costs nothing. "Available" is the prepaid balance GetPrepaidBalance reports: what
may still be spent, holds taken off.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from builders import (
    CARD,
    DECLINED_CARD,
    LATE_FAILING_CARD,
    BuyerWorld,
    add_card,
    flat_fee_parties,
    new_merchant,
    postpaid,
    prepaid,
    refusal,
    sender_token,
    usd,
)
from penny.clock import MICROS_PER_DAY
from penny.domain.errors import Refusal
from penny.domain.model import Operation, Status, StatusCode, Token, TokenKind, Transaction
from penny.services.payments import (
    RESERVE_TIMEOUT_DAYS,
    FundPrepaidRequest,
    InstrumentSetup,
    PaymentRequest,
    PayRequest,
    RefundRequest,
    ReserveRequest,
    cancel_request,
    settle_request,
)
from penny.storage import ipn_sql

MINUTE = 60 * 1_000_000


class World(BuyerWorld):
    def prepaid(self, funded: str = "10") -> InstrumentSetup:
        setup = prepaid(self.services.payments, self.merchant.id, self.buyer.id, self.card.id)
        funding = FundPrepaidRequest(
            self.merchant.id, "fund", setup.second_token.id, setup.instrument.id, usd(funded)
        )
        self.services.payments.execute(funding)
        return setup

    def postpaid(self, limit: str = "100", **extra: object) -> InstrumentSetup:
        payments = self.services.payments
        return postpaid(
            payments,
            self.merchant.id,
            self.buyer.id,
            self.card.id,
            limit=limit,
            **extra,  # type: ignore[arg-type]
        )

    def reserve(
        self, setup: InstrumentSetup, amount: str, ref: str, timeout: int | None = None
    ) -> ReserveRequest:
        token = setup.sender_token.id
        return ReserveRequest(self.merchant.id, ref, token, usd(amount), timeout_minutes=timeout)

    def do(self, request: PaymentRequest) -> Transaction:
        return self.services.payments.execute(request)

    def refused(self, request: PaymentRequest) -> Refusal:
        return refusal(self.services.payments, request)

    def settle(self, reserve: Transaction, amount: str | None = None) -> PaymentRequest:
        money = None if amount is None else usd(amount)
        return settle_request(self.merchant.id, reserve.id, money)

    def cancel(self, txn: Transaction) -> PaymentRequest:
        return cancel_request(self.merchant.id, txn.id)

    def available(self, setup: InstrumentSetup) -> int:
        payments = self.services.payments
        return payments.prepaid_balance(self.merchant.id, setup.instrument.id).main.minor

    def debt(self, setup: InstrumentSetup) -> int:
        payments = self.services.payments
        return payments.debt_balance(self.merchant.id, setup.instrument.id).main.minor

    def liability(self) -> int:
        return self.services.payments.total_prepaid_liability(self.merchant.id).main.minor

    def payable(self) -> int:
        return self.services.payments.account_balance(self.merchant.id).total.minor

    def status_of(self, txn: Transaction) -> tuple[Status, str]:
        found = self.services.payments.transaction(self.merchant.id, txn.id)
        return found.status, found.status_code.value

    def notified(self, txn: Transaction) -> list[tuple[str, str]]:
        """(transactionStatus, operation) of each notification about ``txn``, sorted (they may
        share a time: the tests' clock stands still)."""
        with self.services.database.read() as conn:
            found = ipn_sql.listing(conn, subject_id=txn.id)
        return sorted(
            (dict(n.params)["transactionStatus"], dict(n.params)["operation"]) for n in found
        )


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    services, clock, merchant, buyer = flat_fee_parties(database_url)
    services.directory.set_ipn_url(merchant.id, "https://merchant.example/ipn")
    yield World(services, clock, merchant, buyer, add_card(services, buyer.id))
    assert services.ledger.audit().ok, "every reserve test must leave a clean audit"
    services.database.dispose()


def test_reserve_then_partial_settle_then_refund(world: World) -> None:
    setup = world.prepaid("10")  # available $10.00, liability $10.00, payable $9.50
    assert (world.available(setup), world.liability(), world.payable()) == (1000, 1000, 950)

    reserve = world.do(world.reserve(setup, "4", "r-1"))
    assert (reserve.operation, reserve.status, reserve.status_code) == (
        Operation.reserve,
        Status.reserved,
        StatusCode.success,
    )
    assert reserve.fees == 0
    # $4.00 held: $6.00 left to spend; nothing has reached the merchant yet.
    assert (world.available(setup), world.liability(), world.payable()) == (600, 1000, 950)
    assert world.refused(
        PayRequest(world.merchant.id, "p-1", setup.sender_token.id, usd("6.01"))
    ) is (Refusal.insufficient_balance)

    settle = world.do(world.settle(reserve, "3"))
    assert settle.id != reserve.id  # the charge is a transaction of its own
    assert (settle.operation, settle.status, settle.amount, settle.parent_id) == (
        Operation.settle,
        Status.success,
        300,
        reserve.id,
    )
    assert world.status_of(reserve) == (Status.success, "Success")
    # $3.00 spent, $1.00 released: $7.00 available, the merchant owes $7.00 of prepaid value.
    assert (world.available(setup), world.liability(), world.payable()) == (700, 700, 950)

    refund = world.do(RefundRequest(world.merchant.id, "rf-1", settle.id, usd("1")))
    assert (refund.operation, refund.parent_id, refund.status) == (
        Operation.refund,
        settle.id,
        Status.success,
    )
    assert (world.available(setup), world.liability()) == (800, 800)
    too_much = RefundRequest(world.merchant.id, "rf-2", settle.id, usd("2.01"))
    assert world.refused(too_much) is Refusal.refund_exceeds_original
    rest = world.do(RefundRequest(world.merchant.id, "rf-3", settle.id))
    assert rest.amount == 200
    assert (world.available(setup), world.liability()) == (1000, 1000)
    # The reserve itself is never refunded: its Settle is.
    by_reserve = RefundRequest(world.merchant.id, "rf-4", reserve.id)
    assert world.refused(by_reserve) is Refusal.not_refundable

    assert world.notified(reserve) == [("RESERVED", "RESERVE"), ("SUCCESS", "RESERVE")]
    assert world.notified(settle) == [("SUCCESS", "SETTLE")]


def test_settle_without_an_amount_settles_the_whole_reserve(world: World) -> None:
    setup = world.prepaid("10")
    reserve = world.do(world.reserve(setup, "2.50", "r-1"))
    settle = world.do(world.settle(reserve))
    assert settle.amount == 250
    assert (world.available(setup), world.liability()) == (750, 750)


def test_reserve_then_cancel_releases_the_hold(world: World) -> None:
    setup = world.prepaid("10")
    reserve = world.do(world.reserve(setup, "4", "r-1"))
    assert world.refused(RefundRequest(world.merchant.id, "rf", reserve.id)) is (
        Refusal.invalid_transaction_state
    )
    cancelled = world.do(world.cancel(reserve))
    assert cancelled.id == reserve.id
    assert (cancelled.status, cancelled.status_code) == (Status.cancelled, StatusCode.canceled)
    assert (world.available(setup), world.liability(), world.payable()) == (1000, 1000, 950)
    # Cancel again: the same answer, nothing more released.
    assert world.do(world.cancel(reserve)).status is Status.cancelled
    assert world.available(setup) == 1000
    assert world.refused(world.settle(reserve)) is Refusal.invalid_transaction_state
    assert world.notified(reserve) == [("CANCELLED", "RESERVE"), ("RESERVED", "RESERVE")]


def test_cancel_of_a_completed_or_unknown_transaction_is_refused(world: World) -> None:
    setup = world.prepaid("10")
    pay = world.do(PayRequest(world.merchant.id, "p-1", setup.sender_token.id, usd("1")))
    assert world.refused(world.cancel(pay)) is Refusal.invalid_transaction_state
    assert world.refused(world.settle(pay)) is Refusal.invalid_transaction_state
    missing = cancel_request(world.merchant.id, "NO-SUCH-TRANSACTION")
    assert world.refused(missing) is Refusal.unknown_transaction
    other = new_merchant(world.services, "Elsewhere", "else@example.com").party
    reserve = world.do(world.reserve(setup, "1", "r-1"))
    assert world.refused(cancel_request(other.id, reserve.id)) is Refusal.unknown_transaction
    assert world.refused(settle_request(other.id, reserve.id, None)) is Refusal.unknown_transaction


def test_reserve_expires_after_its_timeout(world: World) -> None:
    setup = world.prepaid("10")
    reserve = world.do(world.reserve(setup, "4", "r-1"))
    short = world.do(world.reserve(setup, "1", "r-2", timeout=30))
    assert world.available(setup) == 500

    world.clock.advance(29 * MINUTE)
    assert world.services.payments.complete_due() == []
    world.clock.advance(2 * MINUTE)
    (expired,) = world.services.payments.complete_due()
    assert (expired.id, expired.status, expired.status_code) == (
        short.id,
        Status.cancelled,
        StatusCode.expired,
    )
    assert world.available(setup) == 600

    # Past the default timeout a reserve can no longer be settled, even before the sweep.
    world.clock.advance(RESERVE_TIMEOUT_DAYS * MICROS_PER_DAY)
    assert world.refused(world.settle(reserve)) is Refusal.invalid_transaction_state
    assert world.available(setup) == 600
    (expired,) = world.services.payments.complete_due()
    assert (expired.id, expired.status_code) == (reserve.id, StatusCode.expired)
    assert (world.available(setup), world.liability(), world.payable()) == (1000, 1000, 950)
    assert world.notified(reserve) == [("CANCELLED", "RESERVE"), ("RESERVED", "RESERVE")]
    assert world.services.payments.complete_due() == []


def test_settle_twice_is_refused_and_a_retry_answers_the_first(world: World) -> None:
    setup = world.prepaid("10")
    reserve = world.do(world.reserve(setup, "4", "r-1"))
    first = world.do(world.settle(reserve, "4"))
    again = world.do(world.settle(reserve, "4"))  # a retry: the same Settle
    assert again.id == first.id
    assert world.refused(world.settle(reserve, "1")) is Refusal.invalid_transaction_state
    assert world.refused(world.settle(reserve)) is Refusal.invalid_transaction_state
    assert world.refused(world.cancel(reserve)) is Refusal.invalid_transaction_state
    assert world.available(setup) == 600


def test_settle_more_than_reserved_is_refused(world: World) -> None:
    setup = world.prepaid("10")
    reserve = world.do(world.reserve(setup, "4", "r-1"))
    assert world.refused(world.settle(reserve, "4.01")) is Refusal.settle_exceeds_reserve
    assert world.status_of(reserve) == (Status.reserved, "Success")
    assert world.available(setup) == 600
    assert world.do(world.settle(reserve, "4")).amount == 400


def test_reserve_retries_by_caller_reference(world: World) -> None:
    setup = world.prepaid("10")
    first = world.do(world.reserve(setup, "4", "r-1"))
    assert world.do(world.reserve(setup, "4", "r-1")).id == first.id
    assert world.available(setup) == 600  # held once
    assert world.refused(world.reserve(setup, "5", "r-1")) is Refusal.duplicate_request
    # A Pay with another reference's content is another request; the same reference is taken.
    pay = PayRequest(world.merchant.id, "r-1", setup.sender_token.id, usd("4"))
    assert world.refused(pay) is Refusal.duplicate_request
    # Refused reserves are not remembered: once the money is there, the same reference works.
    assert world.refused(world.reserve(setup, "7", "r-2")) is Refusal.insufficient_balance
    world.do(world.cancel(first))
    assert world.do(world.reserve(setup, "7", "r-2")).status is Status.reserved
    assert world.available(setup) == 300


def test_a_batch_sees_the_reserves_before_it(world: World) -> None:
    setup = world.prepaid("10")
    reserve = world.reserve(setup, "6", "r-1")
    results = world.services.payments.submit(
        [reserve, world.reserve(setup, "5", "r-2"), world.reserve(setup, "4", "r-3")]
    )
    assert [getattr(r, "refusal", None) for r in results] == [
        None,
        Refusal.insufficient_balance,
        None,
    ]
    held = results[0]
    assert isinstance(held, Transaction)
    (settled, cancelled) = world.services.payments.submit(
        [world.settle(held, "1"), world.cancel(held)]
    )
    assert isinstance(settled, Transaction)
    assert getattr(cancelled, "refusal", None) is Refusal.invalid_transaction_state
    assert world.available(setup) == 900 - 400


def test_postpaid_reserve_holds_the_credit_line(world: World) -> None:
    setup = world.postpaid("100", global_amount_limit=usd("95"))
    reserve = world.do(world.reserve(setup, "60", "r-1"))
    assert world.debt(setup) == 0  # a hold is not debt yet
    pay = PayRequest(world.merchant.id, "p-1", setup.sender_token.id, usd("50"))
    assert world.refused(pay) is Refusal.exceeds_instrument_limits  # $60 held + $50 > $100
    settle = world.do(world.settle(reserve, "40"))
    assert settle.amount == 4000
    assert world.debt(setup) == 4000
    world.do(pay)  # $40 + $50 of the $100 line
    assert world.debt(setup) == 9000
    # The global amount limit counts $90 charged ($20 of the reserve was released): $5.01 more
    # would pass it, though the credit line has $10 left.
    assert world.refused(world.reserve(setup, "5.01", "r-2")) is Refusal.exceeds_instrument_limits
    small = world.do(world.reserve(setup, "5", "r-3"))
    assert world.refused(world.reserve(setup, "0.01", "r-4")) is Refusal.exceeds_instrument_limits
    world.do(world.cancel(small))  # gives its $5 back to the global amount limit
    world.do(world.reserve(setup, "5", "r-4"))
    refund = world.do(RefundRequest(world.merchant.id, "rf-1", settle.id, usd("40")))
    assert refund.status is Status.success
    assert world.debt(setup) == 5000


# -- SingleUse and MultiUse tokens (issue #19): a hold on the buyer's payment method -------------


def _token(world: World, kind: TokenKind, ref: str, card: str = CARD, **terms: object) -> Token:
    services = world.services
    method = add_card(services, world.buyer.id, card) if card != CARD else world.card
    setup = sender_token(
        services.payments, world.merchant.id, world.buyer.id, method.id, ref, kind, **terms
    )
    return setup.token


def _reserve_on(world: World, token: Token, amount: str, ref: str) -> ReserveRequest:
    return ReserveRequest(world.merchant.id, ref, token.id, usd(amount))


def test_single_use_reserve_token_reserves_settles_partly_and_is_spent(world: World) -> None:
    token = _token(world, TokenKind.single_use, "su", transaction_amount="20", reserve=True)
    reserve = world.do(_reserve_on(world, token, "20", "r-1"))
    assert (reserve.status, reserve.fees) == (Status.reserved, 50)  # the card's fee, held
    assert world.payable() == 0  # a hold: nothing has reached the merchant
    settle = world.do(world.settle(reserve, "12"))
    assert (settle.status, settle.amount, settle.fees) == (Status.success, 1200, 50)
    assert world.payable() == 1200 - 50  # $12.00 less the card's $0.50
    assert world.status_of(reserve) == (Status.success, "Success")
    # A refund of the Settle goes back to the card, with the fee's share ($0.50 x 6/12).
    refund = world.do(RefundRequest(world.merchant.id, "rf-1", settle.id, usd("6")))
    assert (refund.status, refund.parent_id) == (Status.success, settle.id)
    assert world.payable() == 1200 - 50 - (600 - 25)
    # The token was spent by its one use.
    again = _reserve_on(world, token, "1", "r-2")
    assert world.refused(again) is Refusal.token_used_already


def test_single_use_token_for_pay_cannot_reserve_and_recurring_never(world: World) -> None:
    for_pay = _token(world, TokenKind.single_use, "su-pay", transaction_amount="5")
    assert world.refused(_reserve_on(world, for_pay, "5", "r-1")) is Refusal.wrong_token_type
    recurring = _token(
        world, TokenKind.recurring, "rec", transaction_amount="5", recurring_period="1 Month"
    )
    assert world.refused(_reserve_on(world, recurring, "5", "r-2")) is Refusal.wrong_token_type
    reserve_token = _token(
        world, TokenKind.single_use, "su-r", transaction_amount="5", reserve=True
    )
    pay = PayRequest(world.merchant.id, "p-1", reserve_token.id, usd("5"))
    assert world.refused(pay) is Refusal.wrong_token_type  # made for Reserve, not Pay


def test_multi_use_reserve_counts_toward_the_global_limit_until_released(world: World) -> None:
    token = _token(world, TokenKind.multi_use, "mu", global_amount_limit="10")
    first = world.do(_reserve_on(world, token, "6", "r-1"))
    assert world.refused(_reserve_on(world, token, "4.01", "r-2")) is Refusal.token_usage_exceeded
    world.do(world.cancel(first))
    second = world.do(_reserve_on(world, token, "10", "r-3"))
    world.do(world.settle(second, "7"))  # $3.00 released: the limit has $3.00 left
    assert world.refused(_reserve_on(world, token, "3.01", "r-4")) is Refusal.token_usage_exceeded
    third = world.do(_reserve_on(world, token, "3", "r-5"))
    world.clock.advance(RESERVE_TIMEOUT_DAYS * MICROS_PER_DAY)
    assert [t.id for t in world.services.payments.complete_due()] == [third.id]
    assert world.do(_reserve_on(world, token, "3", "r-6")).status is Status.reserved
    assert world.payable() == 700 - 50


def test_declined_card_refuses_the_reserve(world: World) -> None:
    token = _token(world, TokenKind.multi_use, "mu-d", DECLINED_CARD, global_amount_limit="9")
    assert world.refused(_reserve_on(world, token, "5", "r-1")) is Refusal.payment_method_declined
    late = _token(world, TokenKind.multi_use, "mu-l", LATE_FAILING_CARD, global_amount_limit="9")
    assert world.refused(_reserve_on(world, late, "5", "r-2")) is Refusal.payment_method_declined
    assert world.payable() == 0

"""Worked examples of the marketplace (issue #19), with hand-computed balances, on both stores.

The merchant ("DigitalDownload") is the marketplace: the caller, which issues the buyer's
prepaid and postpaid instruments; "Elsewhere" is the recipient merchant that gave it a
recipient token. Fees are flat so the numbers are easy to check: a card funding costs Penny's
$0.50, and a marketplace Pay (money between two Penny balances: the ABT rule) $0.05.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from builders import Shop, new_shop, open_store, prepaid, recipient_token, refusal, usd
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import FeeSchedule
from penny.domain.model import FeePayer, RecipientToken, Status, Transaction
from penny.services.factory import Services
from penny.services.marketplace import (
    SetupRecipient,
    VerificationStatus,
    issue_recipient_token,
    verification_status,
)
from penny.services.payments import (
    FundPrepaidRequest,
    InstrumentSetup,
    PaymentRequest,
    PayRequest,
    RefundRequest,
)
from penny.storage import marketplace_sql, schema


@dataclass
class World:
    services: Services
    shop: Shop
    prepaid: InstrumentSetup

    @property
    def caller(self) -> str:
        return self.shop.merchant.id

    def payable(self, party_id: str) -> int:
        return self.services.payments.account_balance(party_id).total.minor

    def fees(self) -> int:
        """Penny's fee account (credit-normal: what Penny has earned)."""
        chart = self.services.payments.chart()
        balance = self.services.ledger.balance(chart.fees)
        assert balance is not None
        return balance.net_credit_posted

    def legs(self, journal_id: int | None) -> list[int]:
        """The amounts of a journal's legs."""
        with self.services.database.read() as conn:
            rows = conn.execute(
                select(schema.legs.c.amount).where(schema.legs.c.journal_id == journal_id)
            )
            return [row.amount for row in rows]

    def prepaid_balance(self) -> int:
        payments = self.services.payments
        return payments.prepaid_balance(self.caller, self.prepaid.instrument.id).main.minor

    def submit(self, request: PaymentRequest) -> Transaction | PaymentsError:
        (result,) = self.services.payments.submit([request])
        return result

    def execute(self, request: PaymentRequest) -> Transaction:
        result = self.submit(request)
        assert isinstance(result, Transaction), result
        return result

    def refused(self, request: PaymentRequest) -> Refusal:
        return refusal(self.services.payments, request)

    def pay(
        self,
        amount: str,
        ref: str,
        token: RecipientToken | None,
        *,
        fixed: str = "0",
        variable: int = 0,
        charge_fee_to: FeePayer | None = None,
        setup: InstrumentSetup | None = None,
    ) -> PayRequest:
        return PayRequest(
            self.caller,
            ref,
            (setup or self.prepaid).sender_token.id,
            usd(amount),
            recipient_token_id=None if token is None else token.id,
            marketplace_fixed_fee=usd(fixed).minor,
            marketplace_variable_fee=variable,
            charge_fee_to=charge_fee_to,
        )

    def refund(self, txn: Transaction, amount: str, ref: str, *, with_fee: bool) -> RefundRequest:
        return RefundRequest(self.caller, ref, txn.id, usd(amount), refund_marketplace_fee=with_fee)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    services = open_store(database_url, fees=FeeSchedule.flat(card=50, bank=20, balance=5))
    shop = new_shop(services, bank=False)
    prepaid = shop.prepaid()
    payments = services.payments
    funding = FundPrepaidRequest(
        shop.merchant.id, "fund-1", prepaid.second_token.id, prepaid.instrument.id, usd("20")
    )
    payments.execute(funding)
    world = World(services, shop, prepaid)
    assert (world.payable(shop.merchant.id), world.fees(), world.prepaid_balance()) == (
        1950,
        50,
        2000,
    )
    yield world
    assert services.ledger.audit().ok, "every marketplace test must leave a clean audit"
    services.database.dispose()


def test_a_marketplace_pay_books_the_callers_fee_in_the_same_journal(world: World) -> None:
    token = world.shop.recipient_token(max_fixed="0.25", max_variable=500)
    other = world.shop.other.id

    txn = world.execute(world.pay("10", "pay-1", token, fixed="0.25", variable=500))

    # $10.00: the caller's fee $0.25 + 5 % = $0.75, Penny's $0.05 borne by the recipient.
    assert (txn.status, txn.amount, txn.fees, txn.marketplace_fee) == (Status.success, 1000, 5, 75)
    assert (txn.recipient_id, txn.recipient_token_id, txn.fees_paid_by) == (
        other,
        token.id,
        FeePayer.recipient,
    )
    assert world.prepaid_balance() == 1000  # the buyer spent $10.00 of prepaid value
    assert world.payable(other) == 920  # the recipient: $10.00 − $0.75 − $0.05
    assert world.payable(world.caller) == 1950 - 925  # the caller kept its $0.75
    assert world.fees() == 55  # Penny: $0.50 funding + $0.05
    # One journal: the buyer's value, the caller's liability and payable, the recipient, Penny.
    assert sorted(world.legs(txn.journal_id)) == sorted([1000, -1000, 925, -920, -5])


def test_refunds_give_back_fees_pro_rata_by_policy(world: World) -> None:
    token = world.shop.recipient_token(max_fixed="0.25", max_variable=500)
    other = world.shop.other.id
    pay = world.execute(world.pay("10", "pay-1", token, fixed="0.25", variable=500))

    # MasterAndMarketplaceTxn, $4.00: Penny gives back 40 % of $0.05 = $0.02, the caller
    # 40 % of $0.75 = $0.30; the recipient gives back $4.00 − $0.30 − $0.02 = $3.68.
    first = world.execute(world.refund(pay, "4", "refund-1", with_fee=True))
    assert (first.recipient_id, first.recipient_token_id, first.parent_id) == (
        other,
        token.id,
        pay.id,
    )
    assert world.prepaid_balance() == 1400
    assert world.payable(other) == 920 - 368
    assert world.payable(world.caller) == 1025 + 370
    assert world.fees() == 53

    # MasterTxnOnly, the other $6.00: the caller keeps its fee, so the recipient would give
    # back $6.00 − $0.03 = $5.97 and has only $5.52.
    too_much = world.refund(pay, "6", "refund-2", with_fee=False)
    assert world.refused(too_much) is Refusal.insufficient_balance

    # MasterAndMarketplaceTxn: $0.03 and $0.45 back, the recipient $5.52: all is as before.
    world.execute(world.refund(pay, "6", "refund-3", with_fee=True))
    assert world.prepaid_balance() == 2000
    assert (world.payable(other), world.payable(world.caller), world.fees()) == (0, 1950, 50)


def test_master_txn_only_lets_the_caller_keep_its_fee(world: World) -> None:
    token = world.shop.recipient_token(max_fixed="1", max_variable=0)
    other = world.shop.other.id
    pay = world.execute(world.pay("10", "pay-1", token, fixed="1"))  # recipient gets $8.95
    assert world.payable(other) == 895

    world.execute(world.refund(pay, "5", "refund-1", with_fee=False))

    # Penny gives back half its $0.05 (rounded down: $0.02); the recipient $5.00 − $0.02.
    assert world.payable(other) == 895 - 498
    assert world.payable(world.caller) == 1950 - 900 + 500
    assert world.fees() == 53
    assert world.prepaid_balance() == 1500


def test_charge_fee_to_caller_on_a_postpaid_pay(world: World) -> None:
    token = world.shop.recipient_token(max_fixed="1", max_variable=0, recipient_pays_fee=False)
    other = world.shop.other.id
    postpaid = world.shop.postpaid()

    # Not said: the recipient did not agree to pay fees, so the caller does.
    txn = world.execute(world.pay("10", "pay-1", token, fixed="1", setup=postpaid))

    # The buyer owes $10.00; the caller fronts $10.00 − $1.00 + Penny's $0.05 to the recipient.
    assert (txn.fees, txn.marketplace_fee, txn.fees_paid_by) == (5, 100, FeePayer.caller)
    debt = world.services.payments.debt_balance(world.caller, postpaid.instrument.id)
    assert debt.main.minor == 1000
    assert world.payable(other) == 900
    assert world.payable(world.caller) == 1950 - 905
    assert world.fees() == 55

    # The caller's payable must cover what it fronts.
    big = world.pay("50", "pay-2", token, fixed="1", setup=postpaid)
    assert world.refused(big) is Refusal.insufficient_balance
    # ChargeFeeTo=Recipient is refused: the recipient token does not allow it.
    to_recipient = world.pay("1", "pay-3", token, setup=postpaid, charge_fee_to=FeePayer.recipient)
    assert world.refused(to_recipient) is Refusal.recipient_does_not_pay_fees


def test_the_recipients_terms_cap_the_fees(world: World) -> None:
    token = world.shop.recipient_token(max_fixed="0.25", max_variable=500)
    fixed_too_high = world.pay("10", "p1", token, fixed="0.26")
    variable_too_high = world.pay("10", "p2", token, variable=501)
    fees_take_it_all = world.pay("0.30", "p3", token, fixed="0.25")  # + Penny's $0.05
    assert world.refused(fixed_too_high) is Refusal.marketplace_fee_too_high
    assert world.refused(variable_too_high) is Refusal.marketplace_fee_too_high
    assert world.refused(fees_take_it_all) is Refusal.fees_exceed_amount
    # At the caps exactly, and with no fee at all, it pays.
    at_caps = world.execute(world.pay("10", "p4", token, fixed="0.25", variable=500))
    assert at_caps.marketplace_fee == 75
    assert world.execute(world.pay("10", "p5", token)).marketplace_fee == 0


def test_who_may_name_a_recipient(world: World) -> None:
    token = world.shop.recipient_token()
    # Marketplace fees without a recipient token: the caller is the recipient.
    assert world.refused(world.pay("1", "p1", None, fixed="0.10")) is Refusal.not_marketplace_app
    # Another caller's recipient token answers like an unknown one.
    elsewhere = recipient_token(world.services, world.shop.other.id, world.caller, "theirs")
    assert world.refused(world.pay("1", "p2", elsewhere)) is Refusal.unknown_recipient_token
    # A cancelled one is not active.
    with world.services.database.write() as conn:
        marketplace_sql.cancel_recipient_token(conn, token.id, 1)
    assert world.refused(world.pay("1", "p3", token)) is Refusal.recipient_token_not_active
    # The marketplace rule of the seeds holds: a recipient token does not let the caller spend
    # an instrument another merchant issued (prepaid instruments are issued by their recipient).
    shop = world.shop
    theirs = prepaid(world.services.payments, shop.other.id, shop.buyer.id, shop.card.id, "o")
    request = world.pay("1", "p4", world.shop.recipient_token("r2"), setup=theirs)
    assert world.refused(request) is Refusal.unknown_token


def test_issuing_a_recipient_token_is_idempotent_and_checked(world: World) -> None:
    first = world.shop.recipient_token("r1", max_fixed="0.50")
    again = world.shop.recipient_token("r1", max_fixed="0.50")
    assert again == first
    assert verification_status(first) is VerificationStatus.complete
    with pytest.raises(PaymentsError) as refused:
        world.shop.recipient_token("r1", max_fixed="0.60")
    assert refused.value.refusal is Refusal.duplicate_request
    with pytest.raises(PaymentsError) as itself:
        issue_recipient_token(
            world.services.payments,
            SetupRecipient(world.caller, world.caller, "self", usd("1"), 0, True),
        )
    assert itself.value.refusal is Refusal.same_sender_and_recipient
    with pytest.raises(PaymentsError) as buyer:
        issue_recipient_token(
            world.services.payments,
            SetupRecipient(world.caller, world.shop.buyer.id, "buyer", usd("1"), 0, True),
        )
    assert buyer.value.refusal is Refusal.invalid_params

"""Refund: give back (part of) a successful Pay, or of a Settle (the charged part of a
Reserve; the Reserve itself is not refundable).

A prepaid Pay's refund returns the amount to the prepaid balance; a postpaid Pay's refund
takes it off the debt, but only while the debt it added has not been settled since (a
SettleDebt is never refunded). A Pay with a SingleUse, MultiUse or Recurring token (issue
#19) gives the money back to the buyer's card, bank account or balance, from the merchant's
payable balance, with the fee's share of the refund. Several partial refunds may add up to
the Pay's amount.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from penny.domain import marketplace as mk
from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Instrument, InstrumentKind, Operation, Status, Transaction
from penny.ledger.model import Leg
from penny.money import Money
from penny.services.payment_queries import books_of
from penny.services.payments import marketplace as market
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import (
    book,
    new_transaction,
    own_transaction,
    refuse,
    source_account,
    succeeded,
)


@dataclass(frozen=True, slots=True)
class RefundRequest(PaymentRequest):
    transaction_id: str
    amount: Money | None = None
    caller_description: str = ""
    ipn_url: str | None = None
    #: A marketplace Pay's refund (#19): MarketplaceRefundPolicy=MasterAndMarketplaceTxn (the
    #: caller gives back its fee's share too) rather than MasterTxnOnly (it keeps its fee).
    refund_marketplace_fee: bool = False


def needs(request: RefundRequest) -> Needs:
    return Needs(transactions=(request.transaction_id,))


def _refundable(batch: Batch, request: RefundRequest) -> Transaction:
    """The Pay or Settle to refund, as this batch left it; refused unless it can still be
    refunded."""
    original = own_transaction(batch, request.caller_id, request.transaction_id)
    if original.operation is Operation.reserve:
        # A reserve is refunded through its Settle; while Reserved, nothing was charged.
        if original.status is Status.reserved:
            raise PaymentsError(Refusal.invalid_transaction_state)
        raise PaymentsError(Refusal.not_refundable, "Refund the Settle transaction instead.")
    if original.operation is not Operation.pay and original.operation is not Operation.settle:
        raise PaymentsError(Refusal.not_refundable)
    if original.status is Status.pending:
        raise PaymentsError(Refusal.original_not_complete)
    if original.status is not Status.success:
        raise PaymentsError(Refusal.original_failed)
    if original.amount - original.refunded <= 0:
        raise PaymentsError(Refusal.fully_refunded)
    return original


def _direct_legs(
    batch: Batch,
    original: Transaction,
    instrument: Instrument,
    books: rules.MerchantBooks,
    amount: Money,
) -> tuple[Leg, ...]:
    """A Pay on an authorization (issue #19): the money goes back where it came from."""
    source = source_account(batch, original.method, instrument.sender_id)
    fee_back = rules.refunded_fee(original.fees, original.amount, amount.minor)
    if market.is_marketplace(original):  # Penny's share goes back by the marketplace legs
        fee_back = 0
    return rules.direct_refund_legs(
        books, batch.chart, source, amount, Money(fee_back, amount.currency)
    )


def decide(batch: Batch, request: RefundRequest, print_: str) -> Transaction:
    original = _refundable(batch, request)
    left = original.amount - original.refunded
    amount = request.amount or Money(left, original.currency)
    refuse(rules.check_amount(amount, original.currency))
    if amount.minor > left:
        raise PaymentsError(Refusal.refund_exceeds_original)
    assert original.instrument_id is not None
    instrument = batch.instruments[original.instrument_id]
    if instrument.kind is InstrumentKind.credit and instrument.settlement_count > (
        original.settlements_before or 0
    ):
        raise PaymentsError(Refusal.debt_already_settled)
    books = books_of(batch.parties[instrument.recipient_id])
    if instrument.kind is InstrumentKind.authorization:
        legs = _direct_legs(batch, original, instrument, books, amount)
    else:
        legs = rules.refund_legs(instrument, books, amount)
    operation = Operation.refund
    txn = new_transaction(batch, request, print_, operation, instrument, original.method, amount)
    txn = replace(txn, parent_id=original.id, ipn_url=request.ipn_url)
    if market.is_marketplace(original):
        legs += market.refund_legs(
            batch,
            original,
            instrument,
            amount,
            with_marketplace_fee=request.refund_marketplace_fee,
        )
        if instrument.kind is InstrumentKind.authorization:
            legs = mk.netted(legs)  # the caller's payable twice: the refund and its fee share
        txn = replace(
            txn, recipient_id=original.recipient_id, recipient_token_id=original.recipient_token_id
        )
    try:
        journal_id = book(batch, txn.id, legs)
    except PaymentsError as refused:
        if refused.refusal is Refusal.settle_exceeds_debt:
            raise PaymentsError(Refusal.debt_already_settled) from None
        raise
    batch.changed_transactions[original.id] = replace(
        original, refunded=original.refunded + amount.minor
    )
    if instrument.kind is not InstrumentKind.prepaid:
        charged = max(0, instrument.charged_total - amount.minor)
        batch.put_instrument(replace(instrument, charged_total=charged))
    return succeeded(txn, journal_id, batch.now)


SPEC = OperationSpec(RefundRequest, needs, decide)

"""Settle: charge (part of) a Reserved transaction, once.

The reserve's pending journal is posted — in full, or for the amount asked (what is not
posted is released) — and the charge is a transaction of its own (operation ``Settle``,
parent: the reserve) with a new id, which Settle answers and Refund takes. The reserve
becomes ``Success``. FPS's Settle carries no ``CallerReference``; its key is derived from the
reserve and the amount (:func:`settle_request`), so a retry gets the first answer and any
other Settle of the same reserve is ``InvalidTransactionState`` (docs/decisions.md, #19).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from penny.domain import marketplace as mk
from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.ids import LEDGER_OWNER, TRANSACTION_ID_LENGTH
from penny.domain.model import (
    SUCCESS_MESSAGE,
    Instrument,
    InstrumentKind,
    Operation,
    Status,
    StatusCode,
    Transaction,
)
from penny.ledger.model import Leg, PostPending
from penny.money import Money
from penny.services.payment_queries import books_of
from penny.services.payments import marketplace as market
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.pay import spend_legs
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import booked, own_transaction, refuse


@dataclass(frozen=True, slots=True)
class SettleRequest(PaymentRequest):
    reserve_transaction_id: str
    #: None: the whole reserved amount.
    amount: Money | None = None
    ipn_url: str | None = None


def settle_request(
    caller_id: str, reserve_id: str, amount: Money | None, ipn_url: str | None = None
) -> SettleRequest:
    """A Settle keyed by what it settles: the reserve and the amount asked."""
    reference = f"Settle {reserve_id} {amount or 'all'}"
    return SettleRequest(caller_id, reference, reserve_id, amount, ipn_url)


def needs(request: SettleRequest) -> Needs:
    return Needs(transactions=(request.reserve_transaction_id,))


def decide(batch: Batch, request: SettleRequest, print_: str) -> Transaction:
    reserve = own_transaction(batch, request.caller_id, request.reserve_transaction_id)
    if reserve.status is not Status.reserved or batch.now >= (reserve.completes_at or 0):
        raise PaymentsError(Refusal.invalid_transaction_state)  # settled, released or expired
    amount = request.amount or Money(reserve.amount, reserve.currency)
    refuse(rules.check_amount(amount, reserve.currency))
    if amount.minor > reserve.amount:
        raise PaymentsError(Refusal.settle_exceeds_reserve)
    assert reserve.instrument_id is not None
    assert reserve.pending_journal_id is not None
    instrument = batch.instruments[reserve.instrument_id]
    txn_id = batch.settings.new_id(TRANSACTION_ID_LENGTH)
    batch.session.assume_new_keys([(LEDGER_OWNER, txn_id)])
    legs, fee, shares = _posted_legs(batch, reserve, instrument, amount)
    outcome = batch.session.apply(
        PostPending(LEDGER_OWNER, txn_id, reserve.pending_journal_id, legs)
    )
    assert outcome.journal_id is not None, outcome  # a held amount always posts
    credit = instrument.kind is InstrumentKind.credit
    if credit or instrument.kind is InstrumentKind.authorization:
        # the part not settled no longer counts toward the global amount limit
        charged = instrument.charged_total - (reserve.amount - amount.minor)
        batch.put_instrument(replace(instrument, charged_total=max(0, charged)))
    batch.changed_transactions[reserve.id] = replace(
        reserve,
        status=Status.success,
        status_code=StatusCode.success,
        status_message=SUCCESS_MESSAGE,
        completed_at=batch.now,
        completes_at=None,
    )
    settle = booked(
        batch,
        request,
        print_,
        txn_id,
        outcome.journal_id,
        instrument,
        reserve.method,
        amount,
        operation=Operation.settle,
        sender_token_id=reserve.sender_token_id,
        parent_id=reserve.id,
        settlements_before=instrument.settlement_count if credit else None,
        ipn_url=request.ipn_url,
    )
    if shares is not None:  # a marketplace reserve's Settle is a marketplace charge too
        settle = replace(
            settle,
            recipient_id=reserve.recipient_id,
            recipient_token_id=reserve.recipient_token_id,
            marketplace_fee=shares.marketplace_fee,
            fees_paid_by=shares.fee_payer,
        )
    return settle if fee == 0 else replace(settle, fees=fee)


def _posted_legs(
    batch: Batch, reserve: Transaction, instrument: Instrument, amount: Money
) -> tuple[tuple[Leg, ...], int, mk.Split | None]:
    """The legs that post ``amount`` of the reserve's hold, the fee they take and, for a
    marketplace reserve, its fees: Pay's journal for that amount (on an authorization, from
    the payment method the hold is on, with the fee of the amount settled; on a marketplace
    reserve, the caller's fee pro rata and Penny's of the amount settled)."""
    assert reserve.pending_journal_id is not None
    held = batch.session.book.pendings[reserve.pending_journal_id].legs
    shares = _settled_shares(batch, reserve, instrument, amount)
    if instrument.kind is not InstrumentKind.authorization:
        legs = spend_legs(batch, instrument, amount)
        if shares is None:
            return legs, 0, None
        assert reserve.recipient_id is not None
        legs += market.transfer(batch, instrument, reserve.recipient_id, amount, shares)
        return _mirroring(held, legs), shares.penny_fee, shares
    if shares is not None:
        assert reserve.recipient_id is not None
        source = held[0].account_id
        legs = market.direct_legs(batch, source, instrument, reserve.recipient_id, amount, shares)
        return _mirroring(held, legs), shares.penny_fee, shares
    fee = batch.settings.fees.fee(reserve.method, amount)
    books = books_of(batch.parties[instrument.recipient_id])
    legs = rules.direct_pay_legs(books, batch.chart, held[0].account_id, amount, fee)
    return _mirroring(held, legs), fee.minor, None


def _settled_shares(
    batch: Batch, reserve: Transaction, instrument: Instrument, amount: Money
) -> mk.Split | None:
    """A marketplace reserve's fees for a Settle of ``amount`` (None: not a marketplace
    reserve): Penny's fee as Pay's (the payment method's on an authorization, the balance
    rule on a prepaid or postpaid instrument)."""
    if not market.is_marketplace(reserve):
        return None
    method = reserve.method if instrument.kind is InstrumentKind.authorization else Method.balance
    penny_fee = batch.settings.fees.fee(method, amount).minor
    shares = mk.settled_split(reserve.amount, market.split_of(reserve), amount.minor, penny_fee)
    if isinstance(shares, Refusal):
        raise PaymentsError(shares)
    return shares


def _mirroring(held: tuple[Leg, ...], legs: tuple[Leg, ...]) -> tuple[Leg, ...]:
    """``legs``, when they post part of the hold leg by leg (the same accounts, the same
    signs): a fee that takes a whole leg's share of a small amount drops a leg, and a fee
    that does not scale with the amount may turn one, so such an amount cannot settle."""
    shape = [(leg.account_id, leg.amount > 0) for leg in legs]
    if shape != [(leg.account_id, leg.amount > 0) for leg in held] or any(
        abs(leg.amount) > abs(hold.amount) for leg, hold in zip(legs, held, strict=True)
    ):
        raise PaymentsError(Refusal.invalid_amount, "The amount is too small to settle.")
    return legs


SPEC = OperationSpec(SettleRequest, needs, decide)

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

from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.ids import LEDGER_OWNER, TRANSACTION_ID_LENGTH
from penny.domain.model import (
    SUCCESS_MESSAGE,
    InstrumentKind,
    Operation,
    Status,
    StatusCode,
    Transaction,
)
from penny.ledger.model import PostPending
from penny.money import Money
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.pay import spend_legs
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import booked, refuse


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


def reserved(batch: Batch, caller_id: str, transaction_id: str) -> Transaction:
    """The caller's transaction as this batch left it (refused when there is none)."""
    txn = batch.originals.get(transaction_id)
    if txn is None or txn.caller_id != caller_id:
        raise PaymentsError(Refusal.unknown_transaction)
    return batch.changed_transactions.get(txn.id, txn)


def decide(batch: Batch, request: SettleRequest, print_: str) -> Transaction:
    reserve = reserved(batch, request.caller_id, request.reserve_transaction_id)
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
    legs = spend_legs(batch, instrument, amount)
    outcome = batch.session.apply(
        PostPending(LEDGER_OWNER, txn_id, reserve.pending_journal_id, legs)
    )
    assert outcome.journal_id is not None, outcome  # a held amount always posts
    credit = instrument.kind is InstrumentKind.credit
    if credit:  # the part not settled no longer counts toward the global amount limit
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
    return booked(
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


SPEC = OperationSpec(SettleRequest, needs, decide)

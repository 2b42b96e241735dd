"""WriteOffDebt: reduce a credit instrument's debt with no money moving (never beyond the
debt: the ledger refuses to over-repay a debt account; it cannot be reversed)."""

from __future__ import annotations

from dataclasses import dataclass

from penny.domain import rules
from penny.domain.fees import Method
from penny.domain.model import Operation, Transaction
from penny.money import Money
from penny.services.payment_queries import books_of
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import book_new, booked, own_credit_instrument, refuse


@dataclass(frozen=True, slots=True)
class WriteOffDebtRequest(PaymentRequest):
    instrument_id: str
    amount: Money
    caller_description: str = ""


def needs(request: WriteOffDebtRequest) -> Needs:
    return Needs(instruments=(request.instrument_id,))


def decide(batch: Batch, request: WriteOffDebtRequest, print_: str) -> Transaction:
    instrument = own_credit_instrument(batch, request.instrument_id, request.caller_id)
    refuse(rules.check_amount(request.amount, instrument.currency))
    books = books_of(batch.parties[instrument.recipient_id])
    legs = rules.write_off_legs(instrument, books, request.amount)
    txn_id, journal_id = book_new(batch, legs)
    return booked(
        batch,
        request,
        print_,
        txn_id,
        journal_id,
        instrument,
        Method.debt,
        request.amount,
        operation=Operation.write_off_debt,
    )


SPEC = OperationSpec(WriteOffDebtRequest, needs, decide)

"""Withdraw: a merchant moves money from its payable balance to its bank (sandbox: the
transfer stays pending for :data:`WITHDRAWAL_DAYS`, then ``complete_due`` posts it)."""

from __future__ import annotations

from dataclasses import dataclass

from penny.clock import MICROS_PER_DAY
from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.model import PENDING_MESSAGE, Operation, Status, StatusCode, Transaction
from penny.domain.parties import PartyKind
from penny.money import Money
from penny.services.payment_queries import books_of
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import book_new, refuse

#: How long a sandbox withdrawal to the merchant's bank takes.
WITHDRAWAL_DAYS = 4


@dataclass(frozen=True, slots=True)
class WithdrawRequest(PaymentRequest):
    """A merchant withdraws from its payable balance to its bank (sandbox: four days)."""

    amount: Money
    caller_description: str = ""


def needs(request: WithdrawRequest) -> Needs:
    return Needs(parties=(request.caller_id,))


def decide(batch: Batch, request: WithdrawRequest, print_: str) -> Transaction:
    merchant = batch.parties.get(request.caller_id)
    if merchant is None or merchant.kind is not PartyKind.business:
        raise PaymentsError(Refusal.invalid_params, "only a business account can withdraw")
    refuse(rules.check_amount(request.amount, batch.chart.currency))
    legs = rules.withdrawal_legs(books_of(merchant), batch.chart, request.amount)
    txn_id, journal_id = book_new(batch, legs, pending=True)
    return Transaction(
        id=txn_id,
        operation=Operation.withdraw,
        caller_id=request.caller_id,
        caller_reference=request.caller_reference,
        fingerprint=print_,
        sender_id=request.caller_id,
        recipient_id=request.caller_id,
        amount=request.amount.minor,
        currency=request.amount.currency,
        fees=0,
        method=Method.bank,
        status=Status.pending,
        status_code=StatusCode.pending_network_response,
        status_message=PENDING_MESSAGE,
        received_at=batch.now,
        completed_at=None,
        pending_journal_id=journal_id,
        completes_at=batch.now + WITHDRAWAL_DAYS * MICROS_PER_DAY,
        caller_description=request.caller_description,
    )


SPEC = OperationSpec(WithdrawRequest, needs, decide)

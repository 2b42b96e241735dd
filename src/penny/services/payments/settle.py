"""SettleDebt: charge the buyer's payment method for (part of) a credit instrument's debt.

The settlement token (from SetupPostpaid) names the payment method; the merchant is paid the
amount less the fee and the debt shrinks by the amount. Settling stays possible after the
instrument expired: the debt is still owed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Operation, Status, TokenKind, Transaction
from penny.money import Money
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import charge, checked_token, own_credit_instrument, refuse


@dataclass(frozen=True, slots=True)
class SettleDebtRequest(PaymentRequest):
    settlement_token_id: str
    instrument_id: str
    amount: Money
    sender_description: str = ""
    caller_description: str = ""
    ipn_url: str | None = None


def needs(request: SettleDebtRequest) -> Needs:
    return Needs(tokens=(request.settlement_token_id,), instruments=(request.instrument_id,))


def decide(batch: Batch, request: SettleDebtRequest, print_: str) -> Transaction:
    token_id, caller_id = request.settlement_token_id, request.caller_id
    token = checked_token(batch, token_id, TokenKind.settlement, caller_id)
    instrument = own_credit_instrument(batch, request.instrument_id, request.caller_id)
    if token.instrument_id != instrument.id:
        raise PaymentsError(Refusal.token_instrument_mismatch)
    refuse(rules.check_amount(request.amount, instrument.currency))
    operation, amount, url = Operation.settle_debt, request.amount, request.ipn_url
    txn = charge(batch, request, print_, operation, instrument, token, amount, url)
    if txn.status is not Status.failure:
        settled = instrument.settlement_count + 1
        batch.put_instrument(replace(instrument, settlement_count=settled))
    return txn


SPEC = OperationSpec(SettleDebtRequest, needs, decide, loads_senders=True)

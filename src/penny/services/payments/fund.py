"""FundPrepaid: move money from the buyer's payment method onto a prepaid instrument.

The funding token (from SetupPrepaid) names the payment method; the merchant is paid the
amount less the fee, and the instrument's balance grows by the whole amount. A card is charged
at once; a bank transfer stays pending until the sandbox's bank answers (``complete_due``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import InstrumentKind, Operation, Status, TokenKind, Transaction
from penny.money import Money
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import charge, checked_token, refuse


@dataclass(frozen=True, slots=True)
class FundPrepaidRequest(PaymentRequest):
    funding_token_id: str
    instrument_id: str
    amount: Money
    sender_description: str = ""
    caller_description: str = ""
    ipn_url: str | None = None


def needs(request: FundPrepaidRequest) -> Needs:
    return Needs(tokens=(request.funding_token_id,), instruments=(request.instrument_id,))


def decide(batch: Batch, request: FundPrepaidRequest, print_: str) -> Transaction:
    token = checked_token(batch, request.funding_token_id, TokenKind.funding, request.caller_id)
    instrument = batch.instruments.get(request.instrument_id)
    refuse(rules.check_instrument(instrument, InstrumentKind.prepaid, request.caller_id, batch.now))
    assert instrument is not None
    if token.instrument_id != instrument.id:
        raise PaymentsError(Refusal.token_instrument_mismatch)
    refuse(rules.check_amount(request.amount, instrument.currency))
    refuse(rules.check_funding_limit(instrument, request.amount))
    operation, amount, url = Operation.fund_prepaid, request.amount, request.ipn_url
    txn = charge(batch, request, print_, operation, instrument, token, amount, url)
    if txn.status is not Status.failure:
        funded = instrument.funded_total + request.amount.minor
        batch.put_instrument(replace(instrument, funded_total=funded))
    return txn


SPEC = OperationSpec(FundPrepaidRequest, needs, decide, loads_senders=True)

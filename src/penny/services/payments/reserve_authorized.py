"""Reserve on a SingleUse or MultiUse sender token (issue #19): a hold on the buyer's payment
method.

The checks are Pay's on these tokens (:mod:`.authorized`), in the same order, with the token's
script evaluated for a ``Reserve`` when the token is SingleUse (its pipeline's ``reserve=True``
wrote ``OperationType == 'Reserve'`` into it; a SingleUse token made for Pay is refused there
with ``wrong_token_type``) and for a ``Pay`` when it is MultiUse. A Recurring token pays a
fixed amount per period and cannot reserve. The payment method is asked at once: a decline —
now or, for a card, later — refuses the Reserve (``payment_method_declined``). The hold is
Pay's journal on these tokens, pending: from the card or bank (external funding) or the buyer's
balance (the ledger holds it there) to the merchant less the fee. The amount counts toward the
authorization's charged total until it is released.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.funding import ChargeOutcome, network_answer
from penny.domain.model import (
    RESERVED_MESSAGE,
    InstrumentKind,
    Operation,
    Status,
    StatusCode,
    Token,
    TokenKind,
    Transaction,
)
from penny.domain.parties import PaymentMethodKind
from penny.services import gatekeeper as gk
from penny.services.payment_queries import books_of
from penny.services.payments.batch import Batch
from penny.services.payments.steps import METHOD_KINDS, book, new_transaction, refuse

if TYPE_CHECKING:
    from penny.services.payments.reserve import ReserveRequest


def decide(
    batch: Batch,
    request: ReserveRequest,
    print_: str,
    token: Token,
    recipient: gk.Slot | None,
    expires_at: int,
) -> Transaction:
    """The Reserve ``request`` on ``token``, held until ``expires_at``."""
    refuse(rules.check_token(token, token.kind, request.caller_id))
    if token.kind is TokenKind.recurring:
        raise PaymentsError(Refusal.wrong_token_type, "A Recurring token cannot reserve.")
    instrument = batch.instruments.get(token.instrument_id)
    kind = InstrumentKind.authorization
    refuse(rules.check_instrument(instrument, kind, request.caller_id, batch.now))
    assert instrument is not None
    refuse(rules.check_amount(request.amount, instrument.currency))
    payment_method = batch.methods.get(token.payment_method_id or "")
    method = None if payment_method is None else METHOD_KINDS[payment_method.kind]
    slots = [gk.authorization_slot(token)] + ([] if recipient is None else [recipient])
    single = token.kind is TokenKind.single_use
    context = gk.Context(
        operation=(Operation.reserve if single else Operation.pay).value,
        amount=request.amount,
        now=batch.now,
        payment_method=None if method is None else method.value,
        sender_id=instrument.sender_id,
        recipient_id=instrument.recipient_id,
        caller_id=request.caller_id,
        sender_token=token.id,
        recipient_token=request.recipient_token_id,
    )
    if batch.settings.check_scripts:
        batch.guard.check(slots, context)
    refuse(rules.check_authorized_total(instrument, request.amount))
    if method is None or payment_method is None or payment_method.party_id != instrument.sender_id:
        raise PaymentsError(Refusal.invalid_params, "the token's payment method is gone")
    fee = batch.settings.fees.fee(method, request.amount)
    txn = new_transaction(
        batch, request, print_, Operation.reserve, instrument, method, request.amount
    )
    decision = batch.settings.funding.charge(payment_method, request.amount, txn.id, batch.now)
    decision = network_answer(payment_method, decision, batch.now)
    if decision.outcome is ChargeOutcome.declined or not decision.completes_ok:
        raise PaymentsError(Refusal.payment_method_declined, decision.reason)
    books = books_of(batch.parties[instrument.recipient_id])
    if payment_method.kind is PaymentMethodKind.balance:
        source = batch.parties[instrument.sender_id].balance_account_id
        assert source is not None
    else:
        source = batch.chart.external_funding
    legs = rules.direct_pay_legs(books, batch.chart, source, request.amount, fee)
    journal_id = book(batch, txn.id, legs, pending=True)
    batch.guard.record(slots, context)
    charged = instrument.charged_total + request.amount.minor
    batch.put_instrument(replace(instrument, charged_total=charged))
    return replace(
        txn,
        fees=fee.minor,
        sender_token_id=token.id,
        ipn_url=request.ipn_url,
        status=Status.reserved,
        status_code=StatusCode.success,
        status_message=RESERVED_MESSAGE,
        pending_journal_id=journal_id,
        completes_at=expires_at,
    )

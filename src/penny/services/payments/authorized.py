"""Pay with a SingleUse, MultiUse or Recurring sender token (issue #19).

:mod:`.pay` hands these tokens here (one test of the token's kind; the prepaid and postpaid
path does nothing more). The checks, in :data:`penny.domain.checks.CHECKS` order: the token
(this caller's, active), its authorization (valid now), the amount, the scripts (the token's:
validity, the least and most one payment may be, the payment method, usage limits — a
SingleUse token is spent by one payment, a Recurring token pays once per period — and the
caller's installed token when RecipientTokenId names one), the global amount limit, then the
funds. The money then comes from the buyer's payment method through the
:class:`~penny.domain.funding.FundingSource`:

* a card: ``Pending`` (a pending journal), then ``Success`` or ``Failure`` when the payment is
  completed (:func:`penny.domain.funding.network_answer`);
* a bank account: ``Pending`` for the sandbox's bank delay, then ``Success`` or ``Failure``;
* the buyer's balance: ``Success`` at once (the ledger refuses it when the balance is short).

The merchant's payable balance gets the amount less the fee — or, when ``RecipientTokenId``
names a recipient token (a marketplace Pay), the recipient gets it less the caller's fee, which
stays with the caller (:func:`deal_of`); the token's usage counts from
the moment the payment is accepted (a payment that fails later does not give it back; its
amount leaves the authorization's charged total).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from penny.domain import marketplace as mk
from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.funding import ChargeDecision, ChargeOutcome, network_answer
from penny.domain.model import (
    Instrument,
    InstrumentKind,
    Operation,
    RecipientToken,
    Token,
    Transaction,
)
from penny.domain.parties import PaymentMethod
from penny.ledger.model import Leg
from penny.money import Money
from penny.services import gatekeeper as gk
from penny.services.payment_queries import books_of
from penny.services.payments import marketplace as market
from penny.services.payments.batch import Batch
from penny.services.payments.steps import (
    METHOD_KINDS,
    answered,
    new_transaction,
    refuse,
    source_account,
)

if TYPE_CHECKING:
    from penny.services.payments.pay import PayRequest


class Checked(NamedTuple):
    """A payment on an authorization that passed every check but the ledger's (Pay's, and
    Reserve's: :mod:`.reserve_authorized`)."""

    instrument: Instrument
    payment_method: PaymentMethod
    method: Method
    slots: list[gk.Slot]
    context: gk.Context


def check(
    batch: Batch,
    request: PayRequest,
    token: Token,
    recipient: gk.Slot | None,
    operation: Operation = Operation.pay,
) -> Checked:
    """The checks of a payment of ``request`` on ``token``, in their order; the scripts are
    evaluated for ``operation``."""
    refuse(rules.check_token(token, token.kind, request.caller_id))
    instrument = batch.instruments.get(token.instrument_id)
    kind = InstrumentKind.authorization
    refuse(rules.check_instrument(instrument, kind, request.caller_id, batch.now))
    assert instrument is not None
    refuse(rules.check_amount(request.amount, instrument.currency))
    payment_method = batch.methods.get(token.payment_method_id or "")
    method = None if payment_method is None else METHOD_KINDS[payment_method.kind]
    slots = [gk.authorization_slot(token)]
    if recipient is not None:
        slots.append(recipient)
    context = gk.Context(
        operation=operation.value,
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
    return Checked(instrument, payment_method, method, slots, context)


def legs_of(
    batch: Batch, checked: Checked, amount: Money, fee: Money, deal: Deal | None = None
) -> tuple[Leg, ...]:
    """The payment's journal: from the payment method to the merchant, less the fee; or, on a
    marketplace payment (``deal``), to the recipient less the caller's fee and Penny's."""
    source = source_account(batch, checked.method, checked.instrument.sender_id)
    if deal is not None:
        token, shares = deal
        return market.direct_legs(
            batch, source, checked.instrument, token.recipient_id, amount, shares
        )
    books = books_of(batch.parties[checked.instrument.recipient_id])
    return rules.direct_pay_legs(books, batch.chart, source, amount, fee)


#: A marketplace payment's recipient token and fees (issue #19).
Deal = tuple[RecipientToken, mk.Split]


def deal_of(
    batch: Batch, request: PayRequest, merchant: RecipientToken | None, method: Method
) -> Deal | None:
    """The marketplace fees of a payment on an authorization that names a recipient token
    (``merchant``), checked against its terms; Penny's fee is the payment method's
    (``method``'s)."""
    if merchant is None:
        return None
    fee = batch.settings.fees.fee(method, request.amount)
    fees = mk.MarketplaceFees(
        request.marketplace_fixed_fee, request.marketplace_variable_fee, request.charge_fee_to
    )
    shares = mk.split(merchant, fees, request.amount, fee)
    if isinstance(shares, Refusal):
        raise PaymentsError(shares)
    return merchant, shares


def counted(batch: Batch, checked: Checked, amount: Money) -> None:
    """The payment counted: the token's usage, the authorization's charged total."""
    batch.guard.record(checked.slots, checked.context)
    instrument = checked.instrument
    charged = instrument.charged_total + amount.minor
    batch.put_instrument(replace(instrument, charged_total=charged))


def charged(
    batch: Batch,
    request: PayRequest,
    print_: str,
    operation: Operation,
    token: Token,
    checked: Checked,
) -> tuple[Transaction, Money, ChargeDecision]:
    """Pay's and Reserve's ``operation`` on ``token``: its transaction (not yet decided; the
    fee, the token and the IPN URL set), the fee, and the payment method's answer to the
    charge (as the card network will give it)."""
    payment_method, method, amount = checked.payment_method, checked.method, request.amount
    fee = batch.settings.fees.fee(method, amount)
    txn = new_transaction(batch, request, print_, operation, checked.instrument, method, amount)
    txn = replace(txn, fees=fee.minor, sender_token_id=token.id, ipn_url=request.ipn_url)
    decision = batch.settings.funding.charge(payment_method, amount, txn.id, batch.now)
    return txn, fee, network_answer(payment_method, decision, batch.now)


def decide(
    batch: Batch,
    request: PayRequest,
    print_: str,
    token: Token,
    recipient: gk.Slot | None,
    merchant: RecipientToken | None = None,
) -> Transaction:
    """The Pay ``request`` on ``token`` (``recipient``: the caller's installed token;
    ``merchant``: the recipient token of a marketplace Pay)."""
    checked = check(batch, request, token, recipient)
    deal = deal_of(batch, request, merchant, checked.method)
    txn, fee, decision = charged(batch, request, print_, Operation.pay, token, checked)
    if decision.outcome is ChargeOutcome.declined:  # not a card: declined at once
        raise PaymentsError(Refusal.payment_method_declined, decision.reason)
    done = answered(batch, txn, legs_of(batch, checked, request.amount, fee, deal), decision)
    counted(batch, checked, request.amount)
    return done if deal is None else market.marked(done, *deal)

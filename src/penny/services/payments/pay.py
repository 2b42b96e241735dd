"""Pay: spend a prepaid balance down, or add to a postpaid instrument's debt.

The sender token decides which: a prepaid sender token spends its prepaid instrument's
balance, a credit sender token adds debt to its credit instrument up to the credit limit (the
ledger's debit limit on the instrument's account); a SingleUse, MultiUse or Recurring token
charges the buyer's payment method (:mod:`.authorized`, issue #19). The token's GateKeeper
script (validity, min/max charge, the caller's own rules) and, when ``RecipientTokenId``
names one, a payment instruction the caller installed are evaluated before anything is booked.

When ``RecipientTokenId`` names a recipient token instead, the Pay is a marketplace Pay
(issue #19): the same journal also pays that merchant from the caller's payable balance, less
the caller's fee and Penny's (:mod:`.marketplace`); only then does the Pay take that branch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from penny.domain import marketplace as mk
from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.model import (
    AUTHORIZATION_TOKEN_KINDS,
    FeePayer,
    Instrument,
    InstrumentKind,
    Operation,
    RecipientToken,
    Token,
    TokenKind,
    Transaction,
)
from penny.ledger.model import Leg
from penny.money import Money
from penny.services import gatekeeper as gk
from penny.services.payment_queries import books_of
from penny.services.payments import authorized
from penny.services.payments import marketplace as market
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import book_new, booked, installed_slot, refuse


@dataclass(frozen=True, slots=True)
class PayRequest(PaymentRequest):
    sender_token_id: str
    amount: Money
    sender_description: str = ""
    caller_description: str = ""
    ipn_url: str | None = None
    #: A recipient token a merchant gave the caller (a marketplace Pay, #19), or a payment
    #: instruction the caller installed (InstallPaymentInstruction), evaluated in the
    #: recipient's slot (docs/decisions.md #7).
    recipient_token_id: str | None = None
    #: The marketplace (#19): MarketplaceFixedFee (minor units), MarketplaceVariableFee
    #: (hundredths of a percent) and ChargeFeeTo (None: not given). Pay's only.
    marketplace_fixed_fee: int = 0
    marketplace_variable_fee: int = 0
    charge_fee_to: FeePayer | None = None


def needs(request: PayRequest) -> Needs:
    if request.recipient_token_id is None:
        return Needs(tokens=(request.sender_token_id,))
    named = (request.recipient_token_id,)
    return Needs(tokens=(request.sender_token_id,), instructions=named, recipient_tokens=named)


def marketplace_of(batch: Batch, request: PayRequest) -> RecipientToken | None:
    """The recipient token a Pay names (a marketplace Pay), checked, or None; marketplace fees
    without one are NotMarketplaceApp (the caller is the recipient)."""
    if request.recipient_token_id is None:
        if request.marketplace_fixed_fee or request.marketplace_variable_fee:
            raise PaymentsError(Refusal.not_marketplace_app)
        return None
    if request.recipient_token_id not in batch.recipient_tokens:
        return None
    return market.recipient_token(batch, request.recipient_token_id, request.caller_id)


def _recipient_slot(batch: Batch, request: PayRequest) -> gk.Slot:
    """The caller's installed token named by RecipientTokenId (docs/decisions.md #7)."""
    assert request.recipient_token_id is not None
    instruction = batch.instructions.get(request.recipient_token_id)
    if instruction is None or instruction.caller_id != request.caller_id:
        raise PaymentsError(Refusal.unknown_recipient_token)
    if not instruction.active:
        raise PaymentsError(Refusal.recipient_token_not_active)
    return installed_slot(instruction)


class Authorised(NamedTuple):
    """What Pay and Reserve know once every check but the ledger's passed."""

    token: Token
    instrument: Instrument
    credit: bool
    method: Method
    slots: list[gk.Slot]
    context: gk.Context


def tokens_of(
    batch: Batch, request: PayRequest, merchant: RecipientToken | None = None
) -> tuple[gk.Slot | None, Token | None]:
    """The caller's installed token named by RecipientTokenId (checked first: any id but one
    of its installed tokens is a parameter error, as RecipientTokenId was before installed
    tokens existed), and the sender token (not checked yet). A recipient token (the
    marketplace, #19) is passed as ``merchant`` (Pay's and Reserve's) and fills no slot."""
    named = request.recipient_token_id
    recipient = None if named is None or merchant else _recipient_slot(batch, request)
    return recipient, batch.tokens.get(request.sender_token_id)


def authorise(
    batch: Batch, request: PayRequest, recipient: gk.Slot | None, token: Token | None
) -> Authorised:
    """Pay's checks on a prepaid or credit sender token, in their order after the recipient's
    installed token: the sender token and its instrument, the amount, then the tokens'
    GateKeeper scripts (evaluated for a Pay: a Reserve on these instruments is a Pay whose
    charge waits for its Settle, docs/decisions.md #19)."""
    if token is not None and token.kind is TokenKind.credit_sender:
        kind, instrument_kind = TokenKind.credit_sender, InstrumentKind.credit
    else:
        kind, instrument_kind = TokenKind.prepaid_sender, InstrumentKind.prepaid
    refuse(rules.check_token(token, kind, request.caller_id))
    assert token is not None
    instrument = batch.instruments.get(token.instrument_id)
    refuse(rules.check_instrument(instrument, instrument_kind, request.caller_id, batch.now))
    assert instrument is not None
    slots = [gk.pipeline_slot(token, instrument)]
    if recipient is not None:
        slots.append(recipient)
    refuse(rules.check_amount(request.amount, instrument.currency))
    credit = instrument_kind is InstrumentKind.credit
    method = Method.debt if credit else Method.prepaid
    context = gk.Context(
        operation=Operation.pay.value,
        amount=request.amount,
        now=batch.now,
        payment_method=method.value,
        sender_id=instrument.sender_id,
        recipient_id=instrument.recipient_id,
        caller_id=request.caller_id,
        sender_token=token.id,
        recipient_token=request.recipient_token_id,
    )
    if batch.settings.check_scripts:  # validity, min/max charge and the caller's own rules
        batch.guard.check(slots, context)
    return Authorised(token, instrument, credit, method, slots, context)


def spend_legs(batch: Batch, instrument: Instrument, amount: Money) -> tuple[Leg, ...]:
    """Pay's journal on ``instrument`` (Reserve holds it, Settle posts it): prepaid value
    spent, or debt recorded."""
    books = books_of(batch.parties[instrument.recipient_id])
    if instrument.kind is InstrumentKind.credit:
        return rules.postpaid_pay_legs(instrument, books, amount)
    return rules.prepaid_pay_legs(instrument, books, amount)


def spent(
    batch: Batch,
    request: PayRequest,
    print_: str,
    c: Authorised,
    merchant: RecipientToken | None,
    operation: Operation,
) -> tuple[Transaction, int]:
    """Pay's and Reserve's booking once authorised: Pay's journal of ``request.amount`` on
    the instrument (with the marketplace legs when ``merchant`` names a recipient token) under a
    new transaction id, held (pending) by a Reserve; the token's use recorded for its usage
    limits, and on a credit instrument the amount counted toward its global amount limit (a
    hold counts until it is released). The transaction (a Reserve's not yet decided) and the
    journal's id."""
    instrument, credit, amount = c.instrument, c.credit, request.amount
    held = operation is Operation.reserve
    deal = None
    if merchant is not None:
        deal = (merchant, market.split(batch, merchant, fees_of(request), amount))
    if credit:
        refuse(rules.check_global_amount_limit(instrument, amount))
    legs = spend_legs(batch, instrument, amount)
    if deal is not None:
        legs += market.pay_legs(batch, instrument, deal[0], amount, deal[1])
    txn_id, journal_id = book_new(batch, legs, pending=held)
    batch.guard.record(c.slots, c.context)
    if credit:
        charged = instrument.charged_total + amount.minor
        batch.put_instrument(replace(instrument, charged_total=charged))
    txn = booked(
        batch,
        request,
        print_,
        txn_id,
        None if held else journal_id,
        instrument,
        c.method,
        amount,
        operation=operation,
        sender_token_id=c.token.id,
        settlements_before=instrument.settlement_count if credit and not held else None,
        ipn_url=request.ipn_url,
    )
    return (txn if deal is None else market.marked(txn, *deal)), journal_id


def decide(batch: Batch, request: PayRequest, print_: str) -> Transaction:
    merchant = marketplace_of(batch, request)
    recipient, token = tokens_of(batch, request, merchant)
    if token is not None and token.kind in AUTHORIZATION_TOKEN_KINDS:  # issue #19
        return authorized.decide(batch, request, print_, token, recipient, merchant)
    c = authorise(batch, request, recipient, token)
    txn, _ = spent(batch, request, print_, c, merchant, Operation.pay)
    if merchant is None and request.recipient_token_id is not None:  # an installed instruction
        return replace(txn, recipient_token_id=request.recipient_token_id)
    return txn


def fees_of(request: PayRequest) -> mk.MarketplaceFees:
    """The marketplace fees a Pay (or Reserve) asks for."""
    return mk.MarketplaceFees(
        request.marketplace_fixed_fee, request.marketplace_variable_fee, request.charge_fee_to
    )


SPEC = OperationSpec(PayRequest, needs, decide)

"""Steps the operations share: a new transaction, booking its journal, charging a payment
method, and the GateKeeper slots of pipeline and installed tokens. Pure, over a :class:`Batch`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from penny.domain import rules
from penny.domain.errors import LEDGER_REFUSALS, PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.funding import ChargeDecision, ChargeOutcome
from penny.domain.ids import LEDGER_OWNER, TRANSACTION_ID_LENGTH
from penny.domain.model import (
    PENDING_MESSAGE,
    RESERVED_MESSAGE,
    SUCCESS_MESSAGE,
    Instrument,
    InstrumentKind,
    Operation,
    PaymentInstruction,
    Status,
    StatusCode,
    Token,
    TokenKind,
    Transaction,
)
from penny.domain.parties import PaymentMethodKind
from penny.gatekeeper import Role
from penny.ledger.model import NewJournal
from penny.money import Money
from penny.services import gatekeeper as gk
from penny.services.payment_queries import books_of
from penny.services.payments.batch import Batch
from penny.services.payments.requests import PaymentRequest

METHOD_KINDS = {
    PaymentMethodKind.card: Method.card,
    PaymentMethodKind.bank: Method.bank,
    PaymentMethodKind.balance: Method.balance,
}


def refuse(refusal: Refusal | None) -> None:
    """Raise ``refusal`` when a check returned one."""
    if refusal is not None:
        raise PaymentsError(refusal)


def new_transaction(
    batch: Batch,
    request: PaymentRequest,
    print_: str,
    operation: Operation,
    instrument: Instrument,
    method: Method,
    amount: Money,
) -> Transaction:
    """A transaction of ``request`` on ``instrument``, not yet decided (pending, no code)."""
    txn_id = batch.settings.new_id(TRANSACTION_ID_LENGTH)
    return booked(
        batch, request, print_, txn_id, None, instrument, method, amount, operation=operation
    )


def booked(
    batch: Batch,
    request: PaymentRequest,
    print_: str,
    txn_id: str,
    journal_id: int | None,
    instrument: Instrument,
    method: Method,
    amount: Money,
    *,
    operation: Operation,
    sender_token_id: str | None = None,
    parent_id: str | None = None,
    settlements_before: int | None = None,
    ipn_url: str | None = None,
) -> Transaction:
    """The one transaction builder. With ``journal_id``: a transaction that succeeded when that
    journal was booked, built once (a Pay makes one; ``dataclasses.replace`` on a 30-field
    record costs ~5 µs each). Without: not yet decided (pending, no code)."""
    done = journal_id is not None
    return Transaction(
        id=txn_id,
        operation=operation,
        caller_id=request.caller_id,
        caller_reference=request.caller_reference,
        fingerprint=print_,
        sender_id=instrument.sender_id,
        recipient_id=instrument.recipient_id,
        amount=amount.minor,
        currency=amount.currency,
        fees=0,
        method=method,
        status=Status.success if done else Status.pending,
        status_code=StatusCode.success if done else StatusCode.undecided,
        status_message=SUCCESS_MESSAGE if done else "",
        received_at=batch.now,
        completed_at=batch.now if done else None,
        instrument_id=instrument.id,
        sender_token_id=sender_token_id,
        parent_id=parent_id,
        journal_id=journal_id,
        settlements_before=settlements_before,
        sender_description=getattr(request, "sender_description", ""),
        caller_description=getattr(request, "caller_description", ""),
        ipn_url=ipn_url,
    )


def succeeded(txn: Transaction, journal_id: int | None, now: int) -> Transaction:
    return replace(
        txn,
        status=Status.success,
        status_code=StatusCode.success,
        status_message=SUCCESS_MESSAGE,
        completed_at=now,
        journal_id=journal_id,
    )


def pending(txn: Transaction, journal_id: int, completes_at: int | None) -> Transaction:
    return replace(
        txn,
        status=Status.pending,
        status_code=StatusCode.pending_network_response,
        status_message=PENDING_MESSAGE,
        pending_journal_id=journal_id,
        completes_at=completes_at,
    )


def reserved(txn: Transaction, journal_id: int, expires_at: int) -> Transaction:
    """A Reserve's answer: the amount held (``journal_id``, pending) until ``expires_at``."""
    return replace(
        txn,
        status=Status.reserved,
        status_code=StatusCode.success,
        status_message=RESERVED_MESSAGE,
        pending_journal_id=journal_id,
        completes_at=expires_at,
    )


def book_new(batch: Batch, legs: tuple[Any, ...], *, pending: bool = False) -> tuple[str, int]:
    """A new transaction id, and the journal of ``legs`` booked under it (see :func:`book`)."""
    txn_id = batch.settings.new_id(TRANSACTION_ID_LENGTH)
    return txn_id, book(batch, txn_id, legs, pending=pending)


def book(batch: Batch, key: str, legs: tuple[Any, ...], *, pending: bool = False) -> int:
    """Apply a journal to the batch's ledger working set; a ledger refusal becomes the
    domain's (any other is a bug: the domain built a journal the ledger cannot take)."""
    # Every key booked here is a transaction id just drawn by ``new_id``: nothing to look up.
    batch.session.assume_new_keys([(LEDGER_OWNER, key)])
    outcome = batch.session.apply(NewJournal(LEDGER_OWNER, key, legs, pending=pending))
    if outcome.ok:
        assert outcome.journal_id is not None
        return outcome.journal_id
    refusal = LEDGER_REFUSALS.get(outcome.code)
    if refusal is None:
        raise AssertionError(f"the ledger refused a journal the domain built: {outcome}")
    raise PaymentsError(refusal)


def checked_token(batch: Batch, token_id: str, kind: TokenKind, caller_id: str) -> Token:
    """The batch's token ``token_id``, refused unless it is a usable ``kind`` token of
    ``caller_id``'s (FundPrepaid's funding, SettleDebt's settlement token)."""
    token = batch.tokens.get(token_id)
    refuse(rules.check_token(token, kind, caller_id))
    assert token is not None
    return token


def own_transaction(batch: Batch, caller_id: str, transaction_id: str) -> Transaction:
    """The caller's transaction ``transaction_id`` as this batch left it (Cancel's, Settle's
    and Refund's); another caller's is unknown to the caller."""
    txn = batch.originals.get(transaction_id)
    if txn is None or txn.caller_id != caller_id:
        raise PaymentsError(Refusal.unknown_transaction)
    return batch.changed_transactions.get(txn.id, txn)


def own_credit_instrument(batch: Batch, instrument_id: str, caller_id: str) -> Instrument:
    """The batch's credit instrument ``instrument_id`` whose merchant is ``caller_id``
    (SettleDebt, WriteOffDebt); any other is unknown to the caller."""
    instrument = batch.instruments.get(instrument_id)
    if instrument is None or instrument.kind is not InstrumentKind.credit:
        raise PaymentsError(Refusal.unknown_instrument)
    if instrument.recipient_id != caller_id:
        raise PaymentsError(Refusal.unknown_instrument)
    return instrument


def charge(
    batch: Batch,
    request: PaymentRequest,
    print_: str,
    operation: Operation,
    instrument: Instrument,
    token: Token,
    amount: Money,
    ipn_url: str | None,
) -> Transaction:
    """FundPrepaid's and SettleDebt's charge: the pipeline token's script checked, then
    ``amount`` taken from the token's payment method and booked (now, or as pending) with
    :func:`~penny.domain.rules.charge_legs` (to the instrument's merchant) as the journal."""
    check_pipeline_token(batch, request, amount, operation, instrument, token)
    books = books_of(batch.parties[instrument.recipient_id])
    method_id = token.payment_method_id
    assert method_id is not None
    payment_method = batch.methods.get(method_id)
    if payment_method is None or payment_method.party_id != instrument.sender_id:
        raise PaymentsError(Refusal.invalid_params, "the token's payment method is gone")
    method = METHOD_KINDS[payment_method.kind]
    fee = batch.settings.fees.fee(method, amount)
    txn = new_transaction(batch, request, print_, operation, instrument, method, amount)
    txn = replace(txn, fees=fee.minor, sender_token_id=token.id, ipn_url=ipn_url)
    decision = batch.settings.funding.charge(payment_method, amount, txn.id, batch.now)
    if decision.outcome is ChargeOutcome.declined:
        return replace(
            txn,
            fees=0,  # nothing was charged, so nothing is owed
            status=Status.failure,
            status_code=StatusCode.transaction_denied,
            status_message=decision.reason or "The payment method was declined.",
            completed_at=batch.now,
        )
    source = source_account(batch, method, instrument.sender_id)
    journal = rules.charge_legs(instrument, books, batch.chart, source, amount, fee)
    return answered(batch, txn, journal, decision)


def source_account(batch: Batch, method: Method, sender_id: str) -> int:
    """The account a payment by ``method`` takes the money from (and its refund gives it
    back to): the buyer's balance, or external funding (card, bank)."""
    if method is Method.balance:
        account = batch.parties[sender_id].balance_account_id
        assert account is not None
        return account
    return batch.chart.external_funding


def answered(
    batch: Batch, txn: Transaction, legs: tuple[Any, ...], decision: ChargeDecision
) -> Transaction:
    """``txn`` booked as the payment method answered the charge: ``legs`` posted now when it
    succeeded, held (pending) until its answer otherwise."""
    if decision.outcome is ChargeOutcome.succeeded:
        return succeeded(txn, book(batch, txn.id, legs), batch.now)
    journal_id = book(batch, txn.id, legs, pending=True)
    return replace(
        pending(txn, journal_id, decision.completes_at), completes_ok=decision.completes_ok
    )


def check_pipeline_token(
    batch: Batch,
    request: PaymentRequest,
    amount: Money,
    operation: Operation,
    instrument: Instrument,
    token: Token,
) -> None:
    """The funding or settlement token's script (no usage limits: nothing to record)."""
    if not batch.settings.check_scripts:
        return
    context = gk.Context(
        operation=operation.value,
        amount=amount,
        now=batch.now,
        payment_method=None,
        sender_id=instrument.sender_id,
        recipient_id=instrument.recipient_id,
        caller_id=request.caller_id,
        sender_token=token.id,
    )
    batch.guard.check([gk.pipeline_slot(token, instrument)], context)


def installed_slot(instruction: PaymentInstruction) -> gk.Slot:
    """A payment instruction the caller installed, in the recipient slot."""
    return gk.Slot(
        Role.RECIPIENT,
        instruction.id,
        instruction.script,
        instruction.created_at,
        single_use=instruction.token_type == gk.SINGLE_USE,
    )

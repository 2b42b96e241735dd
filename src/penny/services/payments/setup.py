"""Issuing instruments: a prepaid instrument with its prepaid sender and funding tokens, or a
credit instrument with its credit sender and settlement tokens (what the SetupPrepaid and
SetupPostpaid pipelines do once the buyer agrees). Keyed by the two caller references: a
retry returns what the first call made; the same references with other content are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.ids import TOKEN_ID_LENGTH
from penny.domain.model import Instrument, InstrumentKind, Token, TokenKind, TokenStatus
from penny.domain.parties import PartyKind, PaymentMethod
from penny.engine.ledger import LedgerSession
from penny.ledger.model import AccountSpec
from penny.money import Money
from penny.services import gatekeeper as gk
from penny.services.payments.requests import (
    InstrumentSetup,
    SetupPostpaid,
    SetupPrepaid,
    SetupSenderToken,
)
from penny.storage import gatekeeper_sql as gk_sql
from penny.storage import parties_sql
from penny.storage import payments_sql as sql

Setup = SetupPrepaid | SetupPostpaid


def check_parties(
    session: LedgerSession, request: Setup | SetupSenderToken, references: Sequence[str]
) -> PaymentMethod:
    """The caller issues for itself, to a personal sender paying with its own method (which
    is returned); the caller references are given and differ."""
    conn = session.conn
    if request.caller_id != request.recipient_id:
        raise PaymentsError(Refusal.instrument_access_denied)
    if request.sender_id == request.recipient_id:
        raise PaymentsError(Refusal.same_sender_and_recipient)
    if not all(references) or len(set(references)) != len(references):
        raise PaymentsError(
            Refusal.invalid_params, "the caller references must be given and differ"
        )
    parties = parties_sql.load_parties(conn, [request.recipient_id, request.sender_id])
    recipient, sender = parties.get(request.recipient_id), parties.get(request.sender_id)
    if recipient is None or recipient.kind is not PartyKind.business:
        raise PaymentsError(Refusal.invalid_params, "the recipient is not a business account")
    if sender is None or sender.kind is not PartyKind.personal:
        raise PaymentsError(Refusal.invalid_params, "the sender is not a personal account")
    method = parties_sql.load_payment_methods(conn, [request.payment_method_id]).get(
        request.payment_method_id
    )
    if method is None or method.party_id != request.sender_id:
        raise PaymentsError(Refusal.invalid_params, "unknown payment method of the sender")
    return method


def first_tokens(
    session: LedgerSession, caller_id: str, references: Sequence[str]
) -> dict[str, Token]:
    """The tokens a first call made under the caller's ``references``, locked until the
    transaction ends (a concurrent call with them waits for this one); a reference a payment
    instruction was installed under is ``DuplicateRequest``."""
    conn = session.conn
    session.lock_keys("token", [(caller_id, reference) for reference in references])
    existing = sql.tokens_by_reference(conn, caller_id, references)
    if any(gk_sql.instruction_by_reference(conn, caller_id, r) for r in references):
        raise PaymentsError(Refusal.duplicate_request)
    return existing


def setup_instrument(
    session: LedgerSession,
    *,
    kind: InstrumentKind,
    request: Setup,
    currency: str,
    references: tuple[str, str],
    spec: AccountSpec,
    new_id: Callable[[int], str],
) -> InstrumentSetup:
    """Issue the instrument and its two tokens, or return what a first call made."""
    conn, now = session.conn, session.now
    check_parties(session, request, references)
    existing = first_tokens(session, request.caller_id, references)
    if existing:
        return _replayed(conn, kind, request, references, existing)
    valid_from = now if request.valid_from is None else request.valid_from
    if request.valid_until is not None and request.valid_until <= valid_from:
        raise PaymentsError(Refusal.invalid_params, "the validity ends before it starts")
    (account_id,) = session.sql.create_accounts(conn, [spec], now)
    limits = limits_of_request(request)
    instrument = Instrument(
        id=new_id(TOKEN_ID_LENGTH),
        kind=kind,
        sender_id=request.sender_id,
        recipient_id=request.recipient_id,
        currency=currency,
        ledger_account_id=account_id,
        created_at=now,
        valid_from=valid_from,
        valid_until=request.valid_until,
        payment_reason=request.payment_reason,
        funding_limit=limits.get("funding_limit"),
        credit_limit=limits.get("credit_limit"),
        global_amount_limit=limits.get("global_amount_limit"),
        min_charge=limits.get("min_charge"),
        max_charge=limits.get("max_charge"),
    )
    sql.insert_instrument(conn, instrument)
    made = _tokens(request, instrument, references, now, new_id)
    sql.insert_tokens(conn, made)
    return InstrumentSetup(instrument, made[0], made[1])


def _tokens(
    request: Setup,
    instrument: Instrument,
    references: tuple[str, str],
    now: int,
    new_id: Callable[[int], str],
) -> list[Token]:
    """The sender token (no payment method) and the funding or settlement token."""
    if instrument.kind is InstrumentKind.prepaid:
        kinds = (TokenKind.prepaid_sender, TokenKind.funding)
    else:
        kinds = (TokenKind.credit_sender, TokenKind.settlement)
    return [
        Token(
            id=new_id(TOKEN_ID_LENGTH),
            kind=token_kind,
            instrument_id=instrument.id,
            caller_id=request.caller_id,
            sender_id=request.sender_id,
            caller_reference=reference,
            status=TokenStatus.active,
            created_at=now,
            payment_method_id=None if index == 0 else request.payment_method_id,
            payment_reason=request.payment_reason,
            script=gk.pipeline_script(token_kind, instrument, request.caller_id),
        )
        for index, (token_kind, reference) in enumerate(zip(kinds, references, strict=True))
    ]


def _replayed(
    conn: Connection,
    kind: InstrumentKind,
    request: Setup,
    references: tuple[str, str],
    existing: dict[str, Token],
) -> InstrumentSetup:
    """A setup retried with the same references returns what the first one made."""
    first, second = existing.get(references[0]), existing.get(references[1])
    if first is None or second is None or first.instrument_id != second.instrument_id:
        raise PaymentsError(Refusal.duplicate_request)
    instrument = sql.load_instruments(conn, [first.instrument_id])[first.instrument_id]
    same = (
        instrument.kind is kind
        and instrument.sender_id == request.sender_id
        and second.payment_method_id == request.payment_method_id
        and limits_of_request(request) == limits_of_instrument(instrument)
    )
    if not same:
        raise PaymentsError(Refusal.duplicate_request)
    return InstrumentSetup(instrument, first, second)


def _minor(value: Money | None) -> int | None:
    return None if value is None else value.minor


def limits_of_request(request: Setup) -> dict[str, int | None]:
    if isinstance(request, SetupPrepaid):
        return {"funding_limit": _minor(request.funding_limit)}
    return {
        "credit_limit": request.credit_limit.minor,
        "global_amount_limit": _minor(request.global_amount_limit),
        "min_charge": _minor(request.min_charge),
        "max_charge": _minor(request.max_charge),
    }


def limits_of_instrument(instrument: Instrument) -> dict[str, int | None]:
    if instrument.kind is InstrumentKind.prepaid:
        return {"funding_limit": instrument.funding_limit}
    return {
        "credit_limit": instrument.credit_limit,
        "global_amount_limit": instrument.global_amount_limit,
        "min_charge": instrument.min_charge,
        "max_charge": instrument.max_charge,
    }

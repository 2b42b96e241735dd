"""Issuing SingleUse, MultiUse and Recurring sender tokens (issue #19): what those pipelines do
once the buyer agrees.

Each token gets an instrument of its own, of kind ``authorization`` (see
:mod:`penny.domain.model`): the buyer, the merchant (the caller), the currency, the validity
(a SingleUse token's ends 3 hours after it starts, a MultiUse token's after a year, unless the
caller says otherwise), the global amount limit and the least and most one payment may be;
its ledger account is held at zero by its bounds, since the money goes from the buyer's
payment method straight to the merchant. The token carries the buyer's payment method and a
GateKeeper script written from all of it (:func:`penny.services.gatekeeper.authorization_script`);
``token_terms`` keeps the kind's own terms for the queries and EditToken.

Keyed by the caller reference: a retry with the same content returns what the first call made;
the same reference with other content is ``DuplicateRequest``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.ids import TOKEN_ID_LENGTH
from penny.domain.model import (
    AUTHORIZATION_TOKEN_KINDS,
    MULTI_USE_VALIDITY_US,
    SINGLE_USE_VALIDITY_US,
    AmountType,
    Instrument,
    InstrumentKind,
    Token,
    TokenKind,
    TokenStatus,
    TokenTerms,
)
from penny.engine.ledger import LedgerSession
from penny.gatekeeper import parse_duration
from penny.ledger.model import AccountFlags, AccountSpec
from penny.services import gatekeeper as gk
from penny.services.payments.requests import SenderTokenSetup, SetupSenderToken
from penny.services.payments.setup import check_parties, first_tokens
from penny.services.payments.steps import METHOD_KINDS
from penny.storage import payments_sql as sql
from penny.storage import terms_sql

#: An authorization's own ledger account may never move (both bounds hold it at zero).
ZERO_ACCOUNT_FLAGS = (
    AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
)


def _invalid(message: str) -> PaymentsError:
    return PaymentsError(Refusal.invalid_params, message)


def charge_bounds(request: SetupSenderToken) -> tuple[int | None, int | None]:
    """The least and most one payment may be (minor units), from the transaction amount."""
    amount = None if request.transaction_amount is None else request.transaction_amount.minor
    if request.kind is not TokenKind.multi_use:
        return None, amount  # SingleUse and Recurring: at most the amount
    kind = request.amount_type or AmountType.exact
    if amount is None:
        return None, None
    if kind is AmountType.exact:
        return amount, amount
    return (None, amount) if kind is AmountType.maximum else (amount, None)


def _check_money(request: SetupSenderToken) -> None:
    for what, value in (
        ("transactionAmount", request.transaction_amount),
        ("globalAmountLimit", request.global_amount_limit),
    ):
        if value is not None and (value.currency != request.currency or value.minor <= 0):
            raise _invalid(f"{what} must be a positive amount in {request.currency}")
    for limit in request.usage_limits:
        if limit.value <= 0:
            raise _invalid("a usage limit must be positive")


def _check_period(text: str | None, what: str) -> None:
    if text is None:
        return
    try:
        period = parse_duration(text)
    except ValueError:
        raise _invalid(f"{what} is not a period such as '1 Month' or '7 Days'") from None
    if period.months == 0 and period.micros < 3_600 * 1_000_000:
        raise _invalid(f"{what} must be at least one hour")


def check_terms(request: SetupSenderToken) -> None:
    """What each kind requires (spec §7.4), as InvalidParams with the field named."""
    if request.kind not in AUTHORIZATION_TOKEN_KINDS:
        raise _invalid("not a SingleUse, MultiUse or Recurring token")
    _check_money(request)
    if request.kind is not TokenKind.multi_use and request.transaction_amount is None:
        raise _invalid("transactionAmount is required")
    if request.kind is TokenKind.multi_use and request.global_amount_limit is None:
        raise _invalid("globalAmountLimit is required")
    if request.kind is TokenKind.recurring and request.recurring_period is None:
        raise _invalid("recurringPeriod is required")
    if request.kind is not TokenKind.multi_use and request.usage_limits:
        raise _invalid("usage limits are for MultiUse tokens")
    if request.recurring_period is not None and request.kind is not TokenKind.recurring:
        raise _invalid("recurringPeriod is for Recurring tokens")
    if request.amount_type is not None and request.kind is not TokenKind.multi_use:
        raise _invalid("amountType is for MultiUse tokens")
    if request.reserve and request.kind is not TokenKind.single_use:
        raise _invalid("reserve is for SingleUse tokens")
    if len(request.usage_limits) > 2:
        raise _invalid("at most two usage limits")
    _check_period(request.recurring_period, "recurringPeriod")
    for limit in request.usage_limits:
        _check_period(limit.period, "usageLimitPeriod")


def validity(request: SetupSenderToken, now: int) -> tuple[int, int | None]:
    """When the token starts and ends (the defaults of spec §7.4 when not given)."""
    valid_from = now if request.valid_from is None else request.valid_from
    valid_until = request.valid_until
    if valid_until is None and request.kind is TokenKind.single_use:
        valid_until = valid_from + SINGLE_USE_VALIDITY_US
    elif valid_until is None and request.kind is TokenKind.multi_use:
        valid_until = valid_from + MULTI_USE_VALIDITY_US
    if valid_until is not None and valid_until <= valid_from:
        raise _invalid("the validity ends before it starts")
    return valid_from, valid_until


def terms_of(request: SetupSenderToken, token_id: str) -> TokenTerms:
    amount = request.transaction_amount
    return TokenTerms(
        token_id=token_id,
        transaction_amount=None if amount is None else amount.minor,
        amount_type=(request.amount_type or AmountType.exact)
        if request.kind is TokenKind.multi_use and amount is not None
        else None,
        reserve=request.reserve,
        recurring_period=request.recurring_period,
        usage_limits=request.usage_limits,
    )


def setup_sender_token(
    session: LedgerSession, request: SetupSenderToken, new_id: Callable[[int], str]
) -> SenderTokenSetup:
    """Issue the token on a new authorization, or return what a first call made."""
    conn, now = session.conn, session.now
    check_terms(request)
    method = check_parties(session, request, (request.caller_reference,))
    existing = first_tokens(session, request.caller_id, (request.caller_reference,))
    if existing:
        return _replayed(conn, request, existing[request.caller_reference])
    valid_from, valid_until = validity(request, now)
    (account_id,) = session.sql.create_accounts(
        conn, [AccountSpec(request.currency, ZERO_ACCOUNT_FLAGS)], now
    )
    low, high = charge_bounds(request)
    limit = request.global_amount_limit
    instrument = Instrument(
        id=new_id(TOKEN_ID_LENGTH),
        kind=InstrumentKind.authorization,
        sender_id=request.sender_id,
        recipient_id=request.recipient_id,
        currency=request.currency,
        ledger_account_id=account_id,
        created_at=now,
        valid_from=valid_from,
        valid_until=valid_until,
        global_amount_limit=None if limit is None else limit.minor,
        min_charge=low,
        max_charge=high,
        payment_reason=request.payment_reason,
    )
    token_id = new_id(TOKEN_ID_LENGTH)
    terms = terms_of(request, token_id)
    script = gk.authorization_script(
        request.kind, instrument, request.caller_id, terms, METHOD_KINDS[method.kind].value
    )
    token = Token(
        id=token_id,
        kind=request.kind,
        instrument_id=instrument.id,
        caller_id=request.caller_id,
        sender_id=request.sender_id,
        caller_reference=request.caller_reference,
        status=TokenStatus.active,
        created_at=now,
        payment_method_id=request.payment_method_id,
        payment_reason=request.payment_reason,
        script=script,
    )
    sql.insert_instrument(conn, instrument)
    sql.insert_tokens(conn, [token])
    terms_sql.insert_terms(conn, terms)
    return SenderTokenSetup(instrument, token, terms)


def _replayed(conn: Connection, request: SetupSenderToken, token: Token) -> SenderTokenSetup:
    """The same reference again: the first call's token when the content is the same."""
    if token.kind is not request.kind:
        raise PaymentsError(Refusal.duplicate_request)
    instrument = sql.load_instruments(conn, [token.instrument_id])[token.instrument_id]
    terms = terms_sql.load_terms(conn, [token.id])[token.id]
    limit = request.global_amount_limit
    same = (
        instrument.sender_id == request.sender_id
        and instrument.currency == request.currency
        and token.payment_method_id == request.payment_method_id
        and (instrument.min_charge, instrument.max_charge) == charge_bounds(request)
        and instrument.global_amount_limit == (None if limit is None else limit.minor)
        and terms == terms_of(request, token.id)
        and request.valid_from in (None, instrument.valid_from)
        and request.valid_until in (None, instrument.valid_until)
    )
    if not same:
        raise PaymentsError(Refusal.duplicate_request)
    return SenderTokenSetup(instrument, token, terms)

"""EditToken (issue #19): a buyer's MultiUse or Recurring token replaced by one with new terms.

The EditToken pipeline (``penny.web.cobranded``) asks the buyer to agree to the terms the caller
proposed for one of its tokens, on a payment method the buyer picks. Once they agree,
:func:`edit_sender_token` issues a **new** token on the **same** authorization instrument (so
the charged total, the global amount limit's counter, carries over), copies the old token's
usage windows to it (so a usage limit already reached stays reached), records the old token in
``token_terms.old_token_id`` (FPS ``OldTokenId``) and cancels the old token. When nothing
changes (the same method, the same terms) the old token stays as it is and is returned (the
pipeline's ``SU``). :func:`editable_token` is what the pipeline's start reads, and
:func:`old_token_ids` what the token queries show as ``OldTokenId``.

Keyed by the caller reference of the new token: a retry with the same content returns what the
first call made; the same reference with other content is ``DuplicateRequest``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from sqlalchemy import Connection

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.ids import TOKEN_ID_LENGTH
from penny.domain.model import Instrument, Token, TokenKind, TokenStatus, TokenTerms
from penny.engine.ledger import LedgerSession
from penny.services import gatekeeper as gk
from penny.services.payments import authorize
from penny.services.payments.requests import SenderTokenSetup, SetupSenderToken
from penny.services.payments.setup import check_parties, first_tokens
from penny.services.payments.steps import METHOD_KINDS
from penny.storage import gatekeeper_sql as gk_sql
from penny.storage import payments_sql as sql
from penny.storage import terms_sql

#: The kinds EditToken changes: a SingleUse token is one payment (a new pipeline, not an
#: edit); prepaid and postpaid tokens' terms are their instruments' (balances, debts).
EDITABLE_KINDS: Final = frozenset({TokenKind.multi_use, TokenKind.recurring})


@dataclass(frozen=True, slots=True)
class Editable:
    """A token EditToken may change, with its instrument and terms."""

    token: Token
    instrument: Instrument
    terms: TokenTerms


def editable_token(conn: Connection, caller_id: str, token_id: str) -> Editable:
    """The caller's active MultiUse or Recurring token ``token_id``: another caller's (or
    none) is ``unknown_token``, another kind ``invalid_token_type``, a cancelled one
    ``token_not_active``."""
    token = sql.load_tokens(conn, [token_id]).get(token_id)
    if token is None or token.caller_id != caller_id:
        raise PaymentsError(Refusal.unknown_token)
    if token.kind not in EDITABLE_KINDS:
        raise PaymentsError(
            Refusal.invalid_token_type, "EditToken changes MultiUse and Recurring tokens only."
        )
    if not token.active:
        raise PaymentsError(Refusal.token_not_active)
    instrument = sql.load_instruments(conn, [token.instrument_id])[token.instrument_id]
    terms = terms_sql.load_terms(conn, [token.id])[token.id]
    return Editable(token, instrument, terms)


def _edited_instrument(old: Instrument, request: SetupSenderToken) -> Instrument:
    """The authorization with the new terms; its counters and validity start stay."""
    low, high = authorize.charge_bounds(request)
    limit = request.global_amount_limit
    return replace(
        old,
        global_amount_limit=None if limit is None else limit.minor,
        min_charge=low,
        max_charge=high,
        valid_until=old.valid_until if request.valid_until is None else request.valid_until,
    )


def _check(session: LedgerSession, old: Editable, request: SetupSenderToken) -> str:
    """The request's terms checked as a new token's, and against the old token; the kind of
    the buyer's chosen method (``CC``, ``ACH``, ``ABT``) for the script."""
    authorize.check_terms(request)
    method = check_parties(session, request, (request.caller_reference,))
    if request.kind is not old.token.kind or request.sender_id != old.token.sender_id:
        raise PaymentsError(
            Refusal.invalid_params, "The edit must keep the token's kind and buyer."
        )
    if request.recurring_period != old.terms.recurring_period:
        raise PaymentsError(Refusal.invalid_params, "A Recurring token's period cannot change.")
    if request.valid_until is not None and request.valid_until <= session.now:
        raise PaymentsError(Refusal.invalid_params, "validityExpiry has already passed.")
    return METHOD_KINDS[method.kind].value


def edit_sender_token(
    session: LedgerSession,
    old_token_id: str,
    request: SetupSenderToken,
    new_id: Callable[[int], str],
) -> SenderTokenSetup:
    """Replace ``old_token_id`` by a token with ``request``'s terms and payment method (the
    request's ``caller_reference`` is the new token's), or return the old token unchanged
    when nothing changes, or what a first call made."""
    conn, now = session.conn, session.now
    existing = first_tokens(session, request.caller_id, (request.caller_reference,))
    if existing:
        return _replayed(conn, old_token_id, request, existing[request.caller_reference])
    old = editable_token(conn, request.caller_id, old_token_id)
    method = _check(session, old, request)
    instrument = _edited_instrument(old.instrument, request)
    unchanged = (
        instrument == old.instrument
        and request.payment_method_id == old.token.payment_method_id
        and authorize.terms_of(request, old.token.id) == replace(old.terms, old_token_id=None)
    )
    if unchanged:
        return SenderTokenSetup(old.instrument, old.token, old.terms)
    token_id = new_id(TOKEN_ID_LENGTH)
    terms = replace(authorize.terms_of(request, token_id), old_token_id=old.token.id)
    # Usage windows counted from the authorization's start, as the old token's were.
    script = gk.authorization_script(
        request.kind, instrument, request.caller_id, terms, method, anchor=instrument.created_at
    )
    token = replace(
        old.token,
        id=token_id,
        caller_reference=request.caller_reference,
        created_at=now,
        payment_method_id=request.payment_method_id,
        script=script,
    )
    sql.update_instruments(conn, [instrument])
    sql.insert_tokens(conn, [token])
    terms_sql.insert_terms(conn, terms)
    _carry_usage(conn, old.token.id, token_id)
    retired = replace(old.token, status=TokenStatus.inactive, cancelled_at=now)
    sql.set_token_status(conn, retired)
    return SenderTokenSetup(instrument, token, terms)


def _carry_usage(conn: Connection, old_id: str, new_id: str) -> None:
    """The old token's usage windows become the new token's (a window whose period changed
    starts elsewhere, so it counts from zero: :meth:`UsageRecord.current`)."""
    used = gk_sql.load_usage(conn, [old_id])
    carried = {(new_id, index): record for (_token, index), record in used.items()}
    gk_sql.save_usage(conn, carried, ())


def _replayed(
    conn: Connection, old_token_id: str, request: SetupSenderToken, token: Token
) -> SenderTokenSetup:
    """The reference was used: the first edit's token when it is the same edit."""
    terms = terms_sql.load_terms(conn, [token.id]).get(token.id)
    if terms is None or terms.old_token_id != old_token_id:
        raise PaymentsError(Refusal.duplicate_request)
    instrument = sql.load_instruments(conn, [token.instrument_id])[token.instrument_id]
    same = (
        token.kind is request.kind
        and token.payment_method_id == request.payment_method_id
        and (instrument.min_charge, instrument.max_charge) == authorize.charge_bounds(request)
        and terms == replace(authorize.terms_of(request, token.id), old_token_id=old_token_id)
        and request.valid_until in (None, instrument.valid_until)
    )
    if not same:
        raise PaymentsError(Refusal.duplicate_request)
    return SenderTokenSetup(instrument, token, terms)


def old_token_ids(conn: Connection, tokens: list[Token]) -> dict[str, str]:
    """The token each of ``tokens`` replaced by an EditToken (FPS ``OldTokenId``), by token id;
    only MultiUse and Recurring tokens can have one, so others cost no query."""
    edited = [token.id for token in tokens if token.kind in EDITABLE_KINDS]
    found = terms_sql.load_terms(conn, edited)
    return {tid: terms.old_token_id for tid, terms in found.items() if terms.old_token_id}

"""Recipient tokens (issue #19): issuing one (the Recipient pipeline) and reading it back.

A merchant (the recipient) signs in on the hosted Recipient pipeline a marketplace caller
sent it to and accepts the caller's terms: :func:`issue_recipient_token` stores its consent,
idempotently by the caller's ``callerReference`` (the same request again returns the same
token; other content under that reference is ``DuplicateRequest``). :func:`recipient_token`
and :func:`verification_status` serve ``GetRecipientVerificationStatus``;
:func:`cancel_recipient_token` serves ``CancelToken`` on a recipient token. The Pays that name
a recipient token are :mod:`penny.services.payments.marketplace`'s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.ids import TOKEN_ID_LENGTH
from penny.domain.model import RecipientToken, TokenStatus
from penny.domain.parties import PartyKind
from penny.money import Money
from penny.services.payments import Payments
from penny.storage import marketplace_sql as sql
from penny.storage import parties_sql


class VerificationStatus(enum.StrEnum):
    """FPS ``RecipientVerificationStatus``."""

    complete = "VerificationComplete"
    pending = "VerificationPending"
    complete_no_limits = "VerificationCompleteNoLimits"


@dataclass(frozen=True, slots=True)
class SetupRecipient:
    """What the Recipient pipeline asks the merchant to accept."""

    caller_id: str
    recipient_id: str
    caller_reference: str
    max_fixed_fee: Money
    #: Hundredths of a percent.
    max_variable_fee: int
    recipient_pays_fee: bool
    valid_from: int | None = None
    valid_until: int | None = None
    payment_reason: str = ""


def issue_recipient_token(payments: Payments, request: SetupRecipient) -> RecipientToken:
    """The merchant's consent, stored; the same request again returns the same token."""
    if request.caller_id == request.recipient_id:
        raise PaymentsError(Refusal.same_sender_and_recipient)
    now = payments.clock.now_us()
    token = RecipientToken(
        id=payments.new_id(TOKEN_ID_LENGTH),
        caller_id=request.caller_id,
        recipient_id=request.recipient_id,
        caller_reference=request.caller_reference,
        currency=request.max_fixed_fee.currency,
        max_fixed_fee=request.max_fixed_fee.minor,
        max_variable_fee=request.max_variable_fee,
        recipient_pays_fee=request.recipient_pays_fee,
        refund_token_id=payments.new_id(TOKEN_ID_LENGTH),
        status=TokenStatus.active,
        created_at=now,
        valid_from=now if request.valid_from is None else request.valid_from,
        valid_until=request.valid_until,
        payment_reason=request.payment_reason,
    )
    with payments.database.write() as conn:
        recipient = parties_sql.load_parties(conn, [request.recipient_id]).get(request.recipient_id)
        if recipient is None or recipient.kind is not PartyKind.business:
            raise PaymentsError(Refusal.invalid_params, "The recipient must be a business account.")
        earlier = sql.recipient_token_by_reference(
            conn, request.caller_id, request.caller_reference
        )
        if earlier is not None:
            same = replace(
                token,
                id=earlier.id,
                refund_token_id=earlier.refund_token_id,
                created_at=earlier.created_at,
                valid_from=earlier.valid_from,
                status=earlier.status,
                cancelled_at=earlier.cancelled_at,
            )
            if same != earlier:
                raise PaymentsError(Refusal.duplicate_request)
            return earlier
        sql.insert_recipient_token(conn, token)
    return token


def recipient_token(payments: Payments, caller_id: str, token_id: str) -> RecipientToken:
    """The caller's recipient token (another caller's answers like an unknown one)."""
    with payments.database.read() as conn:
        token = sql.load_recipient_tokens(conn, [token_id]).get(token_id)
    if token is None or token.caller_id != caller_id:
        raise PaymentsError(Refusal.unknown_recipient_token)
    return token


def verification_status(token: RecipientToken) -> VerificationStatus:
    """Penny verifies a merchant when it opens its account (the sandbox has no identity
    checks), so an active token's recipient is always verified; a cancelled token is
    refused (docs/decisions.md, #19)."""
    if not token.active:
        raise PaymentsError(Refusal.recipient_token_not_active)
    return VerificationStatus.complete


def recipient_token_by_reference(
    payments: Payments, caller_id: str, reference: str
) -> RecipientToken | None:
    """The caller's recipient token issued under ``reference`` (the pipeline's
    ``callerReference``), if any."""
    with payments.database.read() as conn:
        return sql.recipient_token_by_reference(conn, caller_id, reference)


def cancel_recipient_token(payments: Payments, party_id: str, token_id: str) -> RecipientToken:
    """CancelToken on a recipient token, by the marketplace that holds it (its caller) or by
    the merchant that gave it (its recipient); cancelling twice is harmless. Later Pays and
    Reserves naming it are ``TokenNotActive_Recipient``. Anyone else's, or no such token, is
    ``InvalidTokenId`` (``Refusal.unknown_token``), as for the other tokens."""
    with payments.database.write() as conn:
        token = sql.load_recipient_tokens(conn, [token_id]).get(token_id)
        if token is None or party_id not in (token.caller_id, token.recipient_id):
            raise PaymentsError(Refusal.unknown_token)
        if not token.active:
            return token
        now = payments.clock.now_us()
        sql.cancel_recipient_token(conn, token_id, now)
    return replace(token, status=TokenStatus.inactive, cancelled_at=now)

"""Installed payment instructions (InstallPaymentInstruction, GetPaymentInstruction) and the
views of tokens the FPS token actions answer with: installing a caller's GateKeeper script as
a token, reading, listing and cancelling installed tokens, and their usage so far. The
evaluation of scripts at payment time is :mod:`penny.services.gatekeeper`.

The functions take the payments service as a :class:`Services` (what they use of it), so this
module does not import :mod:`penny.services.payments`, which imports the GateKeeper glue: the
ids they draw are :mod:`penny.domain.ids`, below both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.ids import TOKEN_ID_LENGTH
from penny.domain.model import PaymentInstruction, Token, TokenFilter, TokenKind, TokenStatus
from penny.gatekeeper import BadRule, CompiledScript, Role, UsageKind, compile_script
from penny.gatekeeper.usage import UsageRecord
from penny.money import Money
from penny.services.gatekeeper import (
    SINGLE_USE,
    TOKEN_TYPES,
    Guard,
    Slot,
    compiled,
    script_of,
)
from penny.services.payments.listener import cancel_found
from penny.storage import gatekeeper_sql as gk_sql
from penny.storage import payments_sql as sql

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from penny.clock import Clock
    from penny.engine.ledger import Ledger, LedgerSession
    from penny.services.payments.listener import ChangeListener
    from penny.storage.database import Database


class Services(Protocol):
    """What these functions use of :class:`penny.services.payments.Payments`."""

    ledger: Ledger
    database: Database
    clock: Clock

    @property
    def listener(self) -> ChangeListener | None: ...

    def new_id(self, length: int, /) -> str: ...


@dataclass(frozen=True, slots=True)
class InstallRequest:
    caller_id: str
    caller_reference: str
    script: str
    token_type: str
    friendly_name: str = ""
    payment_reason: str = ""


def validate(text: str, token_type: str) -> CompiledScript:
    """The install-time checks of spec §7.1: the script compiles, usage fits the token type."""
    result = compile_script(text)
    if isinstance(result, BadRule):
        raise PaymentsError(Refusal.bad_rule, "; ".join(result.reason_texts))
    if token_type == SINGLE_USE and result.usage_limits:
        raise PaymentsError(Refusal.usage_on_single_use_token)
    if token_type in ("MultiUse", "Recurring") and not result.usage_limits:
        raise PaymentsError(Refusal.usage_not_defined)
    return result


def install(payments: Services, request: InstallRequest) -> PaymentInstruction:
    """InstallPaymentInstruction: store a script as a token of the caller's own account.

    Idempotent by CallerReference: the same content returns the same token; other content
    under a used reference (also a pipeline token's) is DuplicateRequest.
    """
    if request.token_type not in TOKEN_TYPES:
        raise PaymentsError(Refusal.invalid_params, f"TokenType must be one of {TOKEN_TYPES}")
    validate(request.script, request.token_type)

    def work(session: LedgerSession) -> PaymentInstruction:
        conn = session.conn
        session.lock_keys("token", [(request.caller_id, request.caller_reference)])
        if sql.tokens_by_reference(conn, request.caller_id, [request.caller_reference]):
            raise PaymentsError(Refusal.duplicate_request)
        found = gk_sql.instruction_by_reference(conn, request.caller_id, request.caller_reference)
        if found is not None:
            same = (found.script, found.token_type, found.friendly_name, found.payment_reason) == (
                request.script,
                request.token_type,
                request.friendly_name,
                request.payment_reason,
            )
            if not same:
                raise PaymentsError(Refusal.duplicate_request)
            return found
        made = PaymentInstruction(
            id=payments.new_id(TOKEN_ID_LENGTH),
            caller_id=request.caller_id,
            caller_reference=request.caller_reference,
            token_type=request.token_type,
            status=TokenStatus.active,
            created_at=session.now,
            script=request.script,
            friendly_name=request.friendly_name,
            payment_reason=request.payment_reason,
        )
        gk_sql.insert_instruction(conn, made)
        return made

    return payments.ledger.run(work)


@dataclass(frozen=True, slots=True)
class TokenView:
    """FPS's ``Token`` record of either kind of token, and its script."""

    id: str
    friendly_name: str
    status: TokenStatus
    created_at: int
    caller_reference: str
    token_type: str
    payment_reason: str
    script: str
    #: The token an EditToken replaced with this one (FPS ``OldTokenId``; #19).
    old_token_id: str | None = None


def view_of_instruction(instruction: PaymentInstruction) -> TokenView:
    return TokenView(
        instruction.id,
        instruction.friendly_name,
        instruction.status,
        instruction.created_at,
        instruction.caller_reference,
        instruction.token_type,
        instruction.payment_reason,
        instruction.script,
    )


def view_of_token(token: Token, script: str, old_token_id: str | None = None) -> TokenView:
    return TokenView(
        token.id,
        token.friendly_name,
        token.status,
        token.created_at,
        token.caller_reference,
        token.kind.fps_type,
        token.payment_reason,
        script,
        old_token_id,
    )


def _installed(conn: Connection, caller_id: str, token_id: str) -> PaymentInstruction | None:
    """The payment instruction ``token_id`` the caller installed (None: no such one of its)."""
    found = gk_sql.load_instructions(conn, [token_id]).get(token_id)
    return found if found is not None and found.caller_id == caller_id else None


def instruction_view(payments: Services, caller_id: str, token_id: str) -> TokenView:
    """GetPaymentInstruction: a token of the caller with its script (pipeline or installed)."""
    with payments.database.read() as conn:
        instruction = _installed(conn, caller_id, token_id)
        if instruction is not None:
            return view_of_instruction(instruction)
        token = sql.load_tokens(conn, [token_id]).get(token_id)
        if token is None or token.caller_id != caller_id:
            raise PaymentsError(Refusal.unknown_token)
        instrument = sql.load_instruments(conn, [token.instrument_id])[token.instrument_id]
    return view_of_token(token, script_of(token, instrument))


def instruction_by_caller(
    payments: Services, caller_id: str, *, token_id: str | None, caller_reference: str | None
) -> PaymentInstruction | None:
    with payments.database.read() as conn:
        if token_id is not None:
            return _installed(conn, caller_id, token_id)
        assert caller_reference is not None
        return gk_sql.instruction_by_reference(conn, caller_id, caller_reference)


def instructions(payments: Services, caller_id: str, only: TokenFilter) -> list[PaymentInstruction]:
    with payments.database.read() as conn:
        return gk_sql.find_instructions(conn, caller_id, only)


def cancel_instruction(
    payments: Services, caller_id: str, token_id: str, ipn_url: str | None = None
) -> PaymentInstruction:
    """CancelToken for an installed token (cancelling twice is harmless); the listener (the
    IPN outbox) is told, with the request's OverrideIPNURL, as for a pipeline token."""

    def work(session: LedgerSession) -> PaymentInstruction:
        found = gk_sql.load_instructions(session.conn, [token_id], lock=True).get(token_id)
        save, listener = gk_sql.set_instruction_status, payments.listener
        return cancel_found(session, found, caller_id, save, listener, ipn_url)

    return payments.ledger.run(work)


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """GetTokenUsage of one usage limit: the current window and the one before it."""

    kind: UsageKind
    amount: Money
    count: int
    last_amount: Money
    last_count: int
    window_start: int


def token_usage(payments: Services, caller_id: str, token_id: str) -> list[LimitUsage] | None:
    """GetTokenUsage of an installed token, or of a SingleUse, MultiUse or Recurring token
    (issue #19), by its script's usage limits (None: ``token_id`` is neither of the
    caller's); a SingleUse token has no usage to show (``InvalidTokenType``)."""
    now = payments.clock.now_us()
    with payments.database.read() as conn:
        found = _installed(conn, caller_id, token_id)
        if found is not None:
            single, script, created_at = (
                found.token_type == SINGLE_USE,
                found.script,
                found.created_at,
            )
        else:
            token = sql.load_tokens(conn, [token_id]).get(token_id)
            if token is None or token.caller_id != caller_id or not token.kind.authorizes:
                return None
            assert token.script is not None
            single = token.kind is TokenKind.single_use
            script, created_at = token.script, token.created_at
        stored = gk_sql.load_usage(conn, [token_id])
    if single:
        raise PaymentsError(Refusal.invalid_token_type)
    return _usage_of(token_id, script, created_at, stored, now)


def _usage_of(
    token_id: str,
    text: str,
    created_at: int,
    stored: dict[gk_sql.UsageKey, UsageRecord],
    now: int,
) -> list[LimitUsage]:
    """Each usage limit of the script ``text``: its current window and the one before it."""
    slot = Slot(Role.RECIPIENT, token_id, text, created_at)
    script = compiled(text)
    windows = Guard()._windows(slot, script, now)
    limits = []
    for limit in script.usage_limits:
        currency = limit.limit.currency if isinstance(limit.limit, Money) else "USD"
        record = stored.get((token_id, limit.index))
        start = windows[limit.index]
        if record is None:
            record = UsageRecord(start, 0, 0, currency=currency)
        elif record.window_start != start:  # a window has passed since the last use
            record = UsageRecord(start, 0, 0, record.amount, record.count, record.currency)
        limits.append(
            LimitUsage(
                limit.kind,
                Money(record.amount, currency),
                record.count,
                Money(record.last_amount, currency),
                record.last_count,
                record.window_start,
            )
        )
    return limits

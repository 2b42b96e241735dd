"""GateKeeper in the payments service: the scripts of a transaction's tokens, evaluated in the
same database transaction as its journal, with durable usage counters.

* :func:`pipeline_script` writes the script of a pipeline token (SetupPrepaid/SetupPostpaid)
  from its instrument; it is stored with the token when issued, and derived the same way for
  tokens issued before scripts were stored. :func:`pipeline_slot` puts such a token in a
  transaction; when its script is exactly what Penny generates from the instrument, the slot
  carries the :class:`~penny.gatekeeper.generate.TokenRules` and is evaluated natively
  (:func:`penny.gatekeeper.rules.evaluate_rules`, issue #8) instead of compiled.
* :class:`Guard` is one batch's GateKeeper state: the usage counters of the tokens it touches
  (locked and loaded once), the checks (:meth:`Guard.check`) and the counters' updates after a
  success (:meth:`Guard.record`), written by :meth:`Guard.save` in the batch's transaction.
* :func:`install`, :func:`instruction_view`, :func:`cancel_instruction`: FPS's
  InstallPaymentInstruction / GetPaymentInstruction and CancelToken for installed tokens.

Refusals (docs/decisions.md, issue #7): a failed assertion of a pipeline token whose ``orSay``
is one Penny generates keeps that rule's historical FPS code (:data:`GENERATED_REFUSALS`, e.g.
``InstrumentExpired``); any other failed assertion, or a name without a value, is
``TransactionDenied`` with the ``orSay`` text; conflicting declarations are
``IncompatibleTokens``; an exceeded usage limit is ``TokenUsageError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import (
    Instrument,
    PaymentInstruction,
    Token,
    TokenKind,
    TokenStatus,
)
from penny.gatekeeper import (
    BadRule,
    CompiledScript,
    Environment,
    Refused,
    Role,
    Usage,
    UsageKind,
    compile_script,
    evaluate,
    generate,
)
from penny.gatekeeper import (
    Refusal as GkRefusal,
)
from penny.gatekeeper import rules as gk_rules
from penny.gatekeeper.usage import UsageRecord, anchor_of, window_start
from penny.money import Money
from penny.storage import gatekeeper_sql as gk_sql
from penny.storage import payments_sql as sql

if TYPE_CHECKING:
    from penny.engine.ledger import LedgerSession
    from penny.services.payments import Payments

TOKEN_TYPES: Final = ("SingleUse", "MultiUse", "Recurring", "Unrestricted")
SINGLE_USE: Final = TOKEN_TYPES[0]

#: ``orSay`` texts of generated scripts → the refusal that rule always had.
GENERATED_REFUSALS: Final[dict[str, Refusal]] = {
    generate.MSG_ROLE: Refusal.wrong_token_type,
    generate.MSG_OPERATION: Refusal.wrong_token_type,
    generate.MSG_SENDER: Refusal.unknown_instrument,
    generate.MSG_RECIPIENT: Refusal.unknown_instrument,
    generate.MSG_CALLER: Refusal.instrument_access_denied,
    generate.MSG_NOT_YET_VALID: Refusal.instrument_not_yet_valid,
    generate.MSG_EXPIRED: Refusal.instrument_expired,
    generate.MSG_BELOW_MINIMUM: Refusal.amount_below_minimum,
    generate.MSG_ABOVE_MAXIMUM: Refusal.amount_above_maximum,
}

_OPERATION_OF: Final = {
    TokenKind.prepaid_sender: "Pay",
    TokenKind.credit_sender: "Pay",
    TokenKind.funding: "FundPrepaid",
    TokenKind.settlement: "SettleDebt",
}


def pipeline_rules(kind: TokenKind, instrument: Instrument, caller_id: str) -> generate.TokenRules:
    """What a pipeline token of ``kind`` on ``instrument`` allows."""

    def money(minor: int | None) -> Money | None:
        return None if minor is None else Money(minor, instrument.currency)

    method = {TokenKind.prepaid_sender: "Prepaid", TokenKind.credit_sender: "Debt"}.get(kind)
    charges = kind is TokenKind.credit_sender  # min/max charge limit Pays on credit only
    return generate.TokenRules(
        operation=_OPERATION_OF[kind],
        sender_id=instrument.sender_id,
        recipient_id=instrument.recipient_id,
        caller_id=caller_id,
        valid_from=instrument.valid_from,
        valid_until=instrument.valid_until,
        payment_method=method,
        min_charge=money(instrument.min_charge) if charges else None,
        max_charge=money(instrument.max_charge) if charges else None,
        check_validity=kind is not TokenKind.settlement,
    )


def pipeline_script(kind: TokenKind, instrument: Instrument, caller_id: str) -> str:
    """The script of a pipeline token of ``kind`` on ``instrument``."""
    return generate.sender_token_script(pipeline_rules(kind, instrument, caller_id))


def script_of(token: Token, instrument: Instrument) -> str:
    """A pipeline token's stored script, or the one derived from its instrument."""
    if token.script is not None:
        return token.script
    return pipeline_script(token.kind, instrument, token.caller_id)


def pipeline_slot(token: Token, instrument: Instrument) -> Slot:
    """A pipeline token in the sender slot (FundPrepaid and SettleDebt use theirs there too).

    Evaluated natively when its script is the one Penny generates from ``instrument`` now
    (derived, or stored with exactly that text); compiled otherwise.
    """
    rules = pipeline_rules(token.kind, instrument, token.caller_id)
    script, native = _script_of_rules(rules, token.script)
    return Slot(
        Role.SENDER,
        token.id,
        script,
        token.created_at,
        pipeline=True,
        rules=rules if native else None,
    )


@lru_cache(maxsize=16_384)
def _script_of_rules(rules: generate.TokenRules, stored: str | None) -> tuple[str, bool]:
    """A pipeline token's script (``stored``, or generated from ``rules``) and whether it is
    exactly the generated text, so that ``rules`` may be evaluated natively. Cached: writing
    the text costs ~40 µs, and the same tokens pay again and again (#14)."""
    generated = generate.sender_token_script(rules)
    script = generated if stored is None else stored
    return script, script == generated and gk_rules.evaluable(rules)


def compiled(text: str) -> CompiledScript:
    """A stored script, compiled (cached). Stored scripts were checked when stored."""
    result = compile_script(text)
    if isinstance(result, BadRule):
        raise PaymentsError(Refusal.bad_rule, "; ".join(result.reason_texts))
    return result


# -- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slot:
    """One token of a transaction: the role it is used in and its script."""

    role: Role
    token_id: str
    script: str
    installed_at: int
    #: Written by Penny (a pipeline token): its generated messages keep their codes.
    pipeline: bool = False
    single_use: bool = False
    #: The rules ``script`` was generated from, exactly (:func:`pipeline_slot`): evaluated
    #: natively, without compiling the text (generated scripts have no usage limits).
    rules: generate.TokenRules | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """The transaction the scripts are asked about."""

    operation: str
    amount: Money
    now: int
    payment_method: str | None
    sender_id: str
    recipient_id: str
    caller_id: str
    sender_token: str | None = None
    recipient_token: str | None = None
    charge_fee_to: str = "Recipient"


#: Usage key of a single-use token's one use (usage limits are numbered from 1).
SINGLE_USE_INDEX: Final = 0


def _needs_usage(slot: Slot) -> bool:
    if slot.rules is not None:
        return slot.single_use
    result = compile_script(slot.script)  # a script that no longer compiles is refused later,
    limits = () if isinstance(result, BadRule) else result.usage_limits  # by its own request
    return slot.single_use or bool(limits)


@dataclass
class Guard:
    """One batch's GateKeeper state (see the module docstring)."""

    usage: dict[gk_sql.UsageKey, UsageRecord] = field(default_factory=dict)
    loaded: set[gk_sql.UsageKey] = field(default_factory=set)
    changed: dict[gk_sql.UsageKey, UsageRecord] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)

    def prepare(self, session: LedgerSession, slots: Sequence[Slot]) -> None:
        """Lock and load the usage counters of the slots that have usage limits."""
        wanted = sorted({s.token_id for s in slots if _needs_usage(s)} - self.locked)
        if not wanted:
            return
        session.lock_keys("gatekeeper-usage", [(token_id, "") for token_id in wanted])
        self.locked.update(wanted)
        found = gk_sql.load_usage(session.conn, wanted)
        self.usage.update(found)
        self.loaded.update(found)

    def _windows(self, slot: Slot, script: CompiledScript | None, now: int) -> dict[int, int]:
        if script is None:  # a generated script: no usage limits
            return {}
        return {
            limit.index: window_start(anchor_of(limit, slot.installed_at), limit.period, now)
            for limit in script.usage_limits
        }

    def check(self, slots: Sequence[Slot], context: Context) -> None:
        """Raise :class:`PaymentsError` unless every slot's script allows the transaction."""
        for slot in slots:
            script = None if slot.rules is not None else compiled(slot.script)
            if slot.single_use:
                used = self.usage.get((slot.token_id, SINGLE_USE_INDEX))
                if used is not None and used.count >= 1:
                    raise PaymentsError(Refusal.token_used_already)
            usage: dict[int, Usage] = {}
            for index, start in self._windows(slot, script, context.now).items():
                record = self.usage.get((slot.token_id, index))
                amount, count = record.current(start) if record else (0, 0)
                currency = record.currency if record else context.amount.currency
                usage[index] = Usage(Money(amount, currency), count)
            env = Environment(
                my_role=slot.role,
                operation_type=context.operation,
                transaction_amount=context.amount,
                transaction_timestamp=context.now,
                payment_method=context.payment_method,
                charge_fee_to=context.charge_fee_to,
                sender_token=context.sender_token,
                recipient_token=context.recipient_token,
                sender_account_id=context.sender_id,
                recipient_account_id=context.recipient_id,
                caller_account_id=context.caller_id,
                usage=usage,
            )
            if script is None:
                assert slot.rules is not None
                outcome = gk_rules.evaluate_rules(slot.rules, env)
            else:
                outcome = evaluate(script, env)
            if isinstance(outcome, Refused):
                raise _refusal(outcome, slot)

    def record(self, slots: Sequence[Slot], context: Context) -> None:
        """Count an accepted transaction against the slots' usage limits."""
        for slot in slots:
            script = None if slot.rules is not None else compiled(slot.script)
            keys: list[tuple[int, int]] = list(self._windows(slot, script, context.now).items())
            if slot.single_use:
                keys.append((SINGLE_USE_INDEX, slot.installed_at))
            for index, start in keys:
                key = (slot.token_id, index)
                old = self.usage.get(key) or UsageRecord(
                    start, 0, 0, currency=context.amount.currency
                )
                new = old.after_use(start, context.amount.minor, context.amount.currency)
                self.usage[key] = self.changed[key] = new

    def save(self, conn: Connection) -> None:
        gk_sql.save_usage(conn, self.changed, self.loaded)


def _refusal(outcome: Refused, slot: Slot) -> PaymentsError:
    if outcome.reason is GkRefusal.USAGE_LIMIT_EXCEEDED:
        return PaymentsError(Refusal.token_usage_exceeded, outcome.message)
    if outcome.reason is GkRefusal.CONFLICTING_DECLARATION:
        return PaymentsError(Refusal.incompatible_instructions, outcome.message)
    if slot.pipeline and outcome.message in GENERATED_REFUSALS:
        return PaymentsError(GENERATED_REFUSALS[outcome.message])
    return PaymentsError(Refusal.gatekeeper_denied, outcome.message)


# -- installed payment instructions --------------------------------------------------------


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


def install(payments: Payments, request: InstallRequest) -> PaymentInstruction:
    """InstallPaymentInstruction: store a script as a token of the caller's own account.

    Idempotent by CallerReference: the same content returns the same token; other content
    under a used reference (also a pipeline token's) is DuplicateRequest.
    """
    if request.token_type not in TOKEN_TYPES:
        raise PaymentsError(Refusal.invalid_params, f"TokenType must be one of {TOKEN_TYPES}")
    validate(request.script, request.token_type)
    from penny.services.payments import TOKEN_ID_LENGTH

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


def view_of_token(token: Token, script: str) -> TokenView:
    return TokenView(
        token.id,
        token.friendly_name,
        token.status,
        token.created_at,
        token.caller_reference,
        token.kind.fps_type,
        token.payment_reason,
        script,
    )


def instruction_view(payments: Payments, caller_id: str, token_id: str) -> TokenView:
    """GetPaymentInstruction: a token of the caller with its script (pipeline or installed)."""
    with payments.database.read() as conn:
        instruction = gk_sql.load_instructions(conn, [token_id]).get(token_id)
        if instruction is not None and instruction.caller_id == caller_id:
            return view_of_instruction(instruction)
        token = sql.load_tokens(conn, [token_id]).get(token_id)
        if token is None or token.caller_id != caller_id:
            raise PaymentsError(Refusal.unknown_token)
        instrument = sql.load_instruments(conn, [token.instrument_id])[token.instrument_id]
    return view_of_token(token, script_of(token, instrument))


def instruction_by_caller(
    payments: Payments, caller_id: str, *, token_id: str | None, caller_reference: str | None
) -> PaymentInstruction | None:
    with payments.database.read() as conn:
        if token_id is not None:
            found = gk_sql.load_instructions(conn, [token_id]).get(token_id)
        else:
            assert caller_reference is not None
            found = gk_sql.instruction_by_reference(conn, caller_id, caller_reference)
    return found if found is not None and found.caller_id == caller_id else None


def instructions(
    payments: Payments,
    caller_id: str,
    *,
    status: TokenStatus | None = None,
    caller_reference: str | None = None,
    friendly_name: str | None = None,
) -> list[PaymentInstruction]:
    with payments.database.read() as conn:
        return gk_sql.find_instructions(
            conn,
            caller_id,
            status=status,
            caller_reference=caller_reference,
            friendly_name=friendly_name,
        )


def cancel_instruction(
    payments: Payments, caller_id: str, token_id: str, ipn_url: str | None = None
) -> PaymentInstruction:
    """CancelToken for an installed token (cancelling twice is harmless); the listener (the
    IPN outbox) is told, with the request's OverrideIPNURL, as for a pipeline token."""

    def work(session: LedgerSession) -> PaymentInstruction:
        found = gk_sql.load_instructions(session.conn, [token_id]).get(token_id)
        if found is None or found.caller_id != caller_id:
            raise PaymentsError(Refusal.unknown_token)
        if not found.active:
            return found
        cancelled = replace(found, status=TokenStatus.inactive, cancelled_at=session.now)
        gk_sql.set_instruction_status(session.conn, cancelled)
        if payments.listener is not None:
            payments.listener.token_cancelled(session, cancelled, ipn_url)
        return cancelled

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


def token_usage(payments: Payments, caller_id: str, token_id: str) -> list[LimitUsage] | None:
    """GetTokenUsage of an installed token (None: ``token_id`` is not one of the caller's)."""
    now = payments.clock.now_us()
    with payments.database.read() as conn:
        found = gk_sql.load_instructions(conn, [token_id]).get(token_id)
        if found is None or found.caller_id != caller_id:
            return None
        stored = gk_sql.load_usage(conn, [token_id])
    if found.token_type == SINGLE_USE:
        raise PaymentsError(Refusal.invalid_token_type)
    slot = Slot(Role.RECIPIENT, found.id, found.script, found.created_at)
    script = compiled(found.script)
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

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
* Installing, reading and cancelling payment instructions (InstallPaymentInstruction,
  GetPaymentInstruction, CancelToken for installed tokens) is :mod:`penny.services.instructions`.

Refusals (docs/decisions.md, issues #7 and #15): a failed assertion of a pipeline token that
is one of the rules Penny generates keeps that rule's historical FPS code, by the rule's id
(:func:`penny.gatekeeper.generate.rule_at`, :data:`RULE_REFUSALS`, e.g. ``InstrumentExpired``)
whatever its ``orSay`` text says; any other failed assertion, or a name without a value, is
``TransactionDenied`` with the ``orSay`` text; conflicting declarations are
``IncompatibleTokens``; an exceeded usage limit is ``TokenUsageError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import (
    Instrument,
    Token,
    TokenKind,
    TokenTerms,
    UsageLimitType,
)
from penny.gatekeeper import (
    BadRule,
    CompiledScript,
    Environment,
    Refused,
    Role,
    Usage,
    compile_script,
    evaluate,
    generate,
)
from penny.gatekeeper import (
    Refusal as GkRefusal,
)
from penny.gatekeeper import rules as gk_rules
from penny.gatekeeper.generate import Rule
from penny.gatekeeper.usage import UsageRecord, anchor_of, window_start
from penny.money import Money
from penny.storage import gatekeeper_sql as gk_sql

if TYPE_CHECKING:
    from penny.engine.ledger import LedgerSession

TOKEN_TYPES: Final = ("SingleUse", "MultiUse", "Recurring", "Unrestricted")
SINGLE_USE: Final = TOKEN_TYPES[0]

#: Generated rules (by id, :class:`penny.gatekeeper.generate.Rule`) → the refusal that rule
#: always had. The id, not the ``orSay`` text, decides the code.
RULE_REFUSALS: Final[Mapping[Rule, Refusal]] = {
    Rule.role: Refusal.wrong_token_type,
    Rule.operation: Refusal.wrong_token_type,
    Rule.sender: Refusal.unknown_instrument,
    Rule.recipient: Refusal.unknown_instrument,
    Rule.caller: Refusal.instrument_access_denied,
    Rule.not_yet_valid: Refusal.instrument_not_yet_valid,
    Rule.expired: Refusal.instrument_expired,
    Rule.below_minimum: Refusal.amount_below_minimum,
    Rule.above_maximum: Refusal.amount_above_maximum,
}

_OPERATION_OF: Final = {
    TokenKind.prepaid_sender: "Pay",
    TokenKind.credit_sender: "Pay",
    TokenKind.funding: "FundPrepaid",
    TokenKind.settlement: "SettleDebt",
}


def pipeline_rules(kind: TokenKind, instrument: Instrument, caller_id: str) -> generate.TokenRules:
    """What a pipeline token of ``kind`` on ``instrument`` allows."""
    method = {TokenKind.prepaid_sender: "Prepaid", TokenKind.credit_sender: "Debt"}.get(kind)
    charges = kind is TokenKind.credit_sender  # min/max charge limit Pays on credit only
    validity = kind is not TokenKind.settlement
    return _rules_on(instrument, caller_id, _OPERATION_OF[kind], method, charges, validity)


def _rules_on(
    instrument: Instrument,
    caller_id: str,
    operation: str,
    method: str | None,
    charges: bool,
    check_validity: bool = True,
) -> generate.TokenRules:
    """The rules of a token for ``operation`` on ``instrument``: its parties, its validity
    (checked unless not ``check_validity``), and with ``charges`` its least and most charge."""

    def money(minor: int | None) -> Money | None:
        return None if minor is None or not charges else Money(minor, instrument.currency)

    return generate.TokenRules(
        operation=operation,
        sender_id=instrument.sender_id,
        recipient_id=instrument.recipient_id,
        caller_id=caller_id,
        valid_from=instrument.valid_from,
        valid_until=instrument.valid_until,
        payment_method=method,
        min_charge=money(instrument.min_charge),
        max_charge=money(instrument.max_charge),
        check_validity=check_validity,
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


def authorization_script(
    kind: TokenKind, instrument: Instrument, caller_id: str, terms: TokenTerms, method: str
) -> str:
    """The script of a SingleUse, MultiUse or Recurring token (issue #19) on ``instrument``
    (an authorization), for a buyer paying with ``method`` (``CC``, ``ACH``, ``ABT``): the
    generated assertions of a pipeline token for ``Pay`` (``Reserve`` for a SingleUse token
    with ``reserve``), the instrument's least and most payment, then the usage limits — a
    MultiUse token's own, or a Recurring token's one payment per period from its start."""
    operation = "Reserve" if terms.reserve else "Pay"
    rules = _rules_on(instrument, caller_id, operation, method, charges=True)
    if kind is TokenKind.recurring:
        limits: tuple[generate.LimitDeclaration, ...] = (
            generate.LimitDeclaration(
                count=1, period=terms.recurring_period, start=instrument.valid_from
            ),
        )
    else:
        limits = tuple(
            generate.LimitDeclaration(
                amount=(
                    Money(limit.value, instrument.currency)
                    if limit.type is UsageLimitType.amount
                    else None
                ),
                count=limit.value if limit.type is UsageLimitType.count else None,
                period=limit.period,
            )
            for limit in terms.usage_limits
        )
    return generate.sender_token_script(rules) + generate.usage_limit_declarations(limits)


def authorization_slot(token: Token) -> Slot:
    """A SingleUse, MultiUse or Recurring token in the sender slot: its stored script,
    compiled (it may declare usage limits); a SingleUse token is spent by one use."""
    assert token.script is not None, "authorization tokens are issued with their script"
    return Slot(
        Role.SENDER,
        token.id,
        token.script,
        token.created_at,
        pipeline=True,
        single_use=token.kind is TokenKind.single_use,
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
    if slot.pipeline and outcome.reason is GkRefusal.ASSERTION_FAILED:
        rule = generate.rule_at(slot.script, outcome.line)
        if rule is not None:
            return PaymentsError(RULE_REFUSALS[rule])
    return PaymentsError(Refusal.gatekeeper_denied, outcome.message)

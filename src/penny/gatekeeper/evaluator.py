"""GateKeeper evaluation at transaction time: a :class:`CompiledScript` against an
:class:`Environment`.

Semantics (spec §7.2), declarative: all statements of a script hold at once.

1. **Declarations are facts.** A declared built-in (``string PaymentMethod := 'abt';``)
   binds that name when the transaction leaves it open (``Environment.payment_method is
   None``), and must *agree* with the transaction's value otherwise (logic-variable
   unification; enumerations compare case-insensitively). Disagreement refuses the
   transaction with :attr:`Refusal.CONFLICTING_DECLARATION`.
2. **Assertions** are evaluated in statement order; the outcome is the *first* one that does
   not hold, refused with its ``orSay`` message, or ``"Assertion failed at line L:C: <expr>"``
   without one ([?] in the spec: FPS's text for this case is unknown; we name the statement).
   An assertion that reads a name with no value (``PaymentMethod`` neither declared nor given
   by the transaction, ``SenderToken`` on an operation without one) refuses with
   :attr:`Refusal.UNBOUND_NAME`.
3. **Usage limits** (``MyTokenUsageLimitN…``) are checked after the assertions, against
   :attr:`Environment.usage`: the amount and count already used in the *current* window of
   limit N, which the caller computes (fixed windows of the declared period from
   ``StartTime`` or the token's first use; the whole life of the token without a period — a
   storage decision, outside this module). Amount: used + ``TransactionAmount`` ≤ limit (a
   currency mismatch refuses); Count: used + 1 ≤ limit. Failure →
   :attr:`Refusal.USAGE_LIMIT_EXCEEDED` (FPS ``TokenUsageError``).

Work is bounded: no loops exist in the language, expression depth, list length and statement
count are capped at parse time, and money is integer arithmetic (no multiplication exists).
Evaluation is a pure function of the compiled script and the environment.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from penny.gatekeeper.checker import CompiledScript, UsageKind
from penny.gatekeeper.types import BUILTINS, CVar, Instant, UnboundName, Value, eval_expr
from penny.money import Money


class Role(enum.Enum):
    """``MyRole``: the slot the token was passed in."""

    CALLER = "Caller"
    SENDER = "Sender"
    RECIPIENT = "Recipient"


@dataclass(frozen=True, slots=True)
class Usage:
    """What a token already used within the current window of one usage limit."""

    amount: Money
    count: int


@dataclass(frozen=True, slots=True)
class Environment:
    """Everything a script may read at transaction time.

    GateKeeper names map to fields through :data:`NAME_TO_FIELD`. ``None`` means the
    transaction does not provide the value (reading it refuses with UNBOUND_NAME, unless the
    script declares it).
    """

    my_role: Role
    operation_type: str  # 'Pay', 'Refund', 'Reserve', 'Settle', 'FundPrepaid', 'SettleDebt', …
    transaction_amount: Money
    transaction_timestamp: int  # microseconds since the epoch
    payment_method: str | None = None  # 'abt' | 'ach' | 'cc' | 'Debt' | 'Prepaid'
    charge_fee_to: str | None = None  # 'Caller' | 'Recipient'
    sender_token: str | None = None
    recipient_token: str | None = None
    caller_token: str | None = None
    sender_account_id: str | None = None
    recipient_account_id: str | None = None
    caller_account_id: str | None = None
    #: Usage so far in the current window, by usage-limit index (missing: nothing used yet).
    usage: Mapping[int, Usage] = field(default_factory=dict)


#: GateKeeper name (as spelled in the spec; matched case-insensitively) → Environment field.
NAME_TO_FIELD: Final[Mapping[str, str]] = {
    "MyRole": "my_role",
    "TransactionAmount": "transaction_amount",
    "TransactionTimestamp": "transaction_timestamp",
    "PaymentMethod": "payment_method",
    "ChargeFeeTo": "charge_fee_to",
    "OperationType": "operation_type",
    "SenderToken": "sender_token",
    "RecipientToken": "recipient_token",
    "CallerToken": "caller_token",
    "SenderAccountId": "sender_account_id",
    "RecipientAccountId": "recipient_account_id",
    "CallerAccountId": "caller_account_id",
}

_READERS: Final[Mapping[str, Callable[[Environment], Value | None]]] = {
    "myrole": lambda env: env.my_role.value,
    "transactionamount": lambda env: env.transaction_amount,
    "transactiontimestamp": lambda env: Instant(env.transaction_timestamp),
    "paymentmethod": lambda env: env.payment_method,
    "chargefeeto": lambda env: env.charge_fee_to,
    "operationtype": lambda env: env.operation_type,
    "sendertoken": lambda env: env.sender_token,
    "recipienttoken": lambda env: env.recipient_token,
    "callertoken": lambda env: env.caller_token,
    "senderaccountid": lambda env: env.sender_account_id,
    "recipientaccountid": lambda env: env.recipient_account_id,
    "calleraccountid": lambda env: env.caller_account_id,
}
assert set(_READERS) == set(BUILTINS) == {n.lower() for n in NAME_TO_FIELD}


class Refusal(enum.Enum):
    ASSERTION_FAILED = "assertion_failed"
    UNBOUND_NAME = "unbound_name"
    CONFLICTING_DECLARATION = "conflicting_declaration"
    USAGE_LIMIT_EXCEEDED = "usage_limit_exceeded"


@dataclass(frozen=True, slots=True)
class Allowed:
    """Every statement holds."""

    @property
    def allowed(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Refused:
    """The first statement that does not hold: why, the message to show, and where."""

    reason: Refusal
    message: str
    line: int
    column: int

    @property
    def allowed(self) -> bool:
        return False


Outcome = Allowed | Refused

ALLOWED: Final = Allowed()


def bindings(script: CompiledScript, env: Environment) -> dict[str, Value] | Refused:
    """The value of every name the script can read, or the declaration that conflicts."""
    values: dict[str, Value] = {}
    for key, read in _READERS.items():
        value = read(env)
        if value is not None:
            values[key] = value
    for decl in script.declarations:
        given = values.get(decl.key)
        builtin = BUILTINS.get(decl.key)
        if given is not None and builtin is not None:
            same = (
                str(given).casefold() == str(decl.value).casefold()
                if builtin.fold_case
                else given == decl.value
            )
            if not same:
                return Refused(
                    Refusal.CONFLICTING_DECLARATION,
                    f"{decl.name} is declared '{decl.value}' but the transaction has '{given}'",
                    decl.pos.line,
                    decl.pos.column,
                )
            continue
        values[decl.key] = decl.value
    return values


def evaluate(script: CompiledScript, env: Environment) -> Outcome:
    """Decide whether ``env`` satisfies ``script``: :data:`ALLOWED` or the first refusal."""
    values = bindings(script, env)
    if isinstance(values, Refused):
        return values

    def lookup(var: CVar) -> Value:
        try:
            return values[var.key]
        except KeyError:
            raise UnboundName(var) from None

    for assertion in script.assertions:
        pos = assertion.pos
        try:
            holds = eval_expr(assertion.expr, lookup)
        except UnboundName as unbound:
            return Refused(
                Refusal.UNBOUND_NAME,
                f"{unbound.var.name} is not defined for this transaction",
                unbound.var.pos.line,
                unbound.var.pos.column,
            )
        if not holds:
            message = assertion.message
            if message is None:
                message = f"Assertion failed at line {pos.line}:{pos.column}: {assertion.source}"
            return Refused(Refusal.ASSERTION_FAILED, message, pos.line, pos.column)
    return _check_usage(script, env)


def _check_usage(script: CompiledScript, env: Environment) -> Outcome:
    amount = env.transaction_amount
    for limit in script.usage_limits:
        used = env.usage.get(limit.index)
        decl = next(d for d in script.declarations if d.key == f"mytokenusagelimit{limit.index}")
        refused = Refused(
            Refusal.USAGE_LIMIT_EXCEEDED,
            f"Token usage limit {limit.index} exceeded",
            decl.pos.line,
            decl.pos.column,
        )
        if limit.kind is UsageKind.AMOUNT:
            assert isinstance(limit.limit, Money)
            if amount.currency != limit.limit.currency:
                return refused
            so_far = used.amount.minor if used and used.amount.currency == amount.currency else 0
            if so_far + amount.minor > limit.limit.minor:
                return refused
        else:
            assert isinstance(limit.limit, int)
            if (used.count if used else 0) + 1 > limit.limit:
                return refused
    return ALLOWED

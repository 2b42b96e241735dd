"""GateKeeper scripts Penny writes for the tokens of its pipelines (SetupPrepaid, SetupPostpaid).

FPS's CBUI turned pipeline parameters into scripts (spec §8); Penny does the same when an
instrument is issued, and stores the text with each token. The statement order and wording
follow Amazon's generated examples (``MyRole == 'Sender' orSay 'Role does not match';`` first,
then the validity, then the rest). Datetimes are written as ISO 8601 in UTC with the exact
microsecond, so the script says exactly what the instrument says.

Each generated assertion is one :class:`Rule`, written from its entry in :data:`CHECKS`:
``<subject> <comparison> <value> orSay '<message>';``. The rule id is carried by the
assertion's head (its subject and comparison, unique per rule; :func:`rule_at` reads it back),
not by its message: the payments service maps the id to the FPS error code that rule has
always had (for example ``InstrumentExpired``, see
:data:`penny.services.gatekeeper.RULE_REFUSALS`), so rewording a message cannot change a code,
and tokens stored with an older wording keep theirs. (The id cannot be written into the text
itself: the language has no comments, and a pipeline token's script is shown as it is by
GetPaymentInstruction.)

Pure: the caller passes plain values; nothing here reads a clock or a store.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from penny.gatekeeper.types import Instant, format_datetime
from penny.money import Money


class Rule(enum.Enum):
    """A generated assertion, by id (stable: the payments service maps it to a refusal)."""

    role = "role"
    operation = "operation"
    not_yet_valid = "not_yet_valid"
    expired = "expired"
    sender = "sender"
    recipient = "recipient"
    caller = "caller"
    below_minimum = "below_minimum"
    above_maximum = "above_maximum"


@dataclass(frozen=True, slots=True)
class Check:
    """How a :class:`Rule` is written: the name it tests, the comparison, the ``orSay`` text."""

    subject: str
    comparison: str
    message: str


#: Every generated assertion. Subject and comparison together name the rule (no two alike).
CHECKS: Final[Mapping[Rule, Check]] = {
    Rule.role: Check("MyRole", "==", "Role does not match"),
    Rule.operation: Check("OperationType", "==", "This token cannot be used for this operation."),
    Rule.not_yet_valid: Check(
        "TransactionTimestamp", ">=", "The instrument is not valid yet (see its validity start)."
    ),
    Rule.expired: Check(
        "TransactionTimestamp", "<", "The prepaid or postpaid instrument has expired."
    ),
    Rule.sender: Check("SenderAccountId", "==", "The sender is not the buyer of this instrument."),
    Rule.recipient: Check(
        "RecipientAccountId", "==", "The recipient is not the merchant of this instrument."
    ),
    Rule.caller: Check(
        "CallerAccountId",
        "==",
        "Only the recipient of the instrument may do this; a third-party caller may not.",
    ),
    Rule.below_minimum: Check(
        "TransactionAmount", ">=", "The amount is below the minimum charge of the instrument."
    ),
    Rule.above_maximum: Check(
        "TransactionAmount", "<=", "The amount is above the maximum charge of the instrument."
    ),
}

_RULE_OF_HEAD: Final = {
    (check.subject.casefold(), check.comparison): rule for rule, check in CHECKS.items()
}
assert len(_RULE_OF_HEAD) == len(CHECKS), "two generated rules share a head"
_HEAD: Final = re.compile(r"\s*([A-Za-z]\w*)\s*(==|!=|>=|<=|<|>)")

MSG_ROLE: Final = CHECKS[Rule.role].message
MSG_OPERATION: Final = CHECKS[Rule.operation].message
MSG_SENDER: Final = CHECKS[Rule.sender].message
MSG_RECIPIENT: Final = CHECKS[Rule.recipient].message
MSG_CALLER: Final = CHECKS[Rule.caller].message
MSG_NOT_YET_VALID: Final = CHECKS[Rule.not_yet_valid].message
MSG_EXPIRED: Final = CHECKS[Rule.expired].message
MSG_BELOW_MINIMUM: Final = CHECKS[Rule.below_minimum].message
MSG_ABOVE_MAXIMUM: Final = CHECKS[Rule.above_maximum].message


def rule_at(script: str, line: int) -> Rule | None:
    """The rule of the generated assertion on ``line`` (from 1) of ``script``, by its head;
    None when that line is no generated assertion."""
    lines = script.split("\n")
    if not 1 <= line <= len(lines):
        return None
    head = _HEAD.match(lines[line - 1])
    if head is None:
        return None
    return _RULE_OF_HEAD.get((head[1].casefold(), head[2]))


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What a pipeline token allows, in plain values.

    ``operation`` is the FPS operation the token is for (``Pay``, ``FundPrepaid``,
    ``SettleDebt``); ``payment_method`` is declared when known (``Prepaid``, ``Debt``, or the
    buyer's ``cc``/``ach``/``abt``); ``check_validity`` is false for settlement tokens (a debt
    can be settled after the instrument expired).
    """

    operation: str
    sender_id: str
    recipient_id: str
    caller_id: str
    valid_from: int
    valid_until: int | None
    payment_method: str | None = None
    min_charge: Money | None = None
    max_charge: Money | None = None
    check_validity: bool = True


def _quote(text: str) -> str:
    assert "'" not in text, "GateKeeper strings cannot hold a quote"
    return f"'{text}'"


def _assert(rule: Rule, value: str) -> str:
    check = CHECKS[rule]
    return f"{check.subject} {check.comparison} {_quote(value)} orSay {_quote(check.message)};"


def sender_token_script(rules: TokenRules) -> str:
    """The script of a token used in the sender slot, one statement per line."""
    lines = [_assert(Rule.role, "Sender"), _assert(Rule.operation, rules.operation)]
    if rules.check_validity:
        lines.append(_assert(Rule.not_yet_valid, format_datetime(Instant(rules.valid_from))))
        if rules.valid_until is not None:
            lines.append(_assert(Rule.expired, format_datetime(Instant(rules.valid_until))))
    lines += [
        _assert(Rule.sender, rules.sender_id),
        _assert(Rule.recipient, rules.recipient_id),
        _assert(Rule.caller, rules.caller_id),
    ]
    if rules.min_charge is not None:
        lines.append(_assert(Rule.below_minimum, str(rules.min_charge)))
    if rules.max_charge is not None:
        lines.append(_assert(Rule.above_maximum, str(rules.max_charge)))
    if rules.payment_method is not None:
        lines.append(f"string PaymentMethod := {_quote(rules.payment_method)};")
    return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True, slots=True)
class LimitDeclaration:
    """A usage limit Penny declares in an authorization token's script (issue #19): an
    ``Amount`` limit (``amount``) or a ``Count`` limit (``count``), per ``period`` (a
    duration literal such as ``1 Month``; None: the token's life), counted from ``start``
    (an instant; None: from the token's installation)."""

    amount: Money | None = None
    count: int | None = None
    period: str | None = None
    start: int | None = None

    def __post_init__(self) -> None:
        assert (self.amount is None) != (self.count is None), "an Amount or a Count limit"


def usage_limit_declarations(limits: tuple[LimitDeclaration, ...]) -> str:
    """The declarations of ``limits`` (numbered from 1), one statement per line; appended to
    :func:`sender_token_script`'s text, they leave its assertions' lines where they were."""
    lines: list[str] = []
    for index, limit in enumerate(limits, start=1):
        name = f"MyTokenUsageLimit{index}"
        if limit.amount is not None:
            lines.append(f"string {name}Type := 'Amount';")
            lines.append(f"money {name} := {_quote(str(limit.amount))};")
        else:
            lines.append(f"string {name}Type := 'Count';")
            lines.append(f"integer {name} := {limit.count};")
        if limit.period is not None:
            lines.append(f"duration {name}Period := {_quote(limit.period)};")
        if limit.start is not None:
            start = format_datetime(Instant(limit.start))
            lines.append(f"datetime {name}StartTime := {_quote(start)};")
    return "".join(f"{line}\n" for line in lines)

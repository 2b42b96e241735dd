"""Native evaluation of the scripts Penny generates (:mod:`penny.gatekeeper.generate`).

Why this exists (issue #8): every Pay, FundPrepaid and SettleDebt evaluates the GateKeeper
script of its sender token, and each pipeline token has a script of its own (its ids and
validity dates are in the text). With thousands of buyers the compile cache (keyed by text)
always misses, and lexing, parsing and checking the script cost ~180 µs per payment; a cache
large enough to hold every token's compiled script would cost megabytes per thousand tokens.
A generated script says no more than the :class:`~penny.gatekeeper.generate.TokenRules` it was
written from, so :func:`evaluate_rules` decides the same question from those plain values
directly, in a few microseconds and without compiling anything.

The outcome is *exactly* what ``evaluate(compile_script(sender_token_script(rules)), env)``
returns — the same :class:`Allowed`, or the same :class:`Refused` (reason, message, line and
column): the declaration conflict of ``string PaymentMethod := …`` first (case-insensitive, as
for every enumeration), then the assertions in statement order, with a missing account id
refused as an unbound name. Generated scripts declare no usage limits, so none are checked.
``tests/test_gatekeeper_rules.py`` enforces the equivalence with a property test.

The equivalence holds for rules whose script compiles with one statement per line:
:func:`evaluable` says whether ``rules`` are such (Penny's ids, currencies, charges and dates
always are); callers compile the text otherwise.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from penny.epoch import from_datetime
from penny.gatekeeper.evaluator import ALLOWED, Environment, Outcome, Refusal, Refused, Role
from penny.gatekeeper.generate import (
    MSG_ABOVE_MAXIMUM,
    MSG_BELOW_MINIMUM,
    MSG_CALLER,
    MSG_EXPIRED,
    MSG_NOT_YET_VALID,
    MSG_OPERATION,
    MSG_RECIPIENT,
    MSG_ROLE,
    MSG_SENDER,
    TokenRules,
)
from penny.gatekeeper.lexer import MAX_STRING_CHARS
from penny.money import MAX_INTEGER_DIGITS, Money, currency_scale

#: Datetime literals need a four-digit year: instants from 1000-01-01 to the end of 9999.
_FIRST_INSTANT: Final = from_datetime(datetime(1000, 1, 1, tzinfo=UTC))
_LAST_INSTANT: Final = from_datetime(datetime.max.replace(tzinfo=UTC))


def _plain_string(text: str) -> bool:
    # A quote cannot be written at all; a line break would move the following statements.
    return len(text) <= MAX_STRING_CHARS and "'" not in text and "\n" not in text


def _plain_money(money: Money | None) -> bool:
    # parse_money reads back non-negative amounts of at most MAX_INTEGER_DIGITS whole digits.
    if money is None:
        return True
    bound: int = 10 ** (MAX_INTEGER_DIGITS + currency_scale(money.currency))
    return 0 <= money.minor < bound


def evaluable(rules: TokenRules) -> bool:
    """Whether :func:`evaluate_rules` is exact for ``rules``: their script compiles, one
    statement per line (strings without quotes or line breaks and within the literal limit,
    charges that read back, instants with a four-digit year)."""
    instants = [rules.valid_from]
    if rules.valid_until is not None:
        instants.append(rules.valid_until)
    strings = (rules.operation, rules.sender_id, rules.recipient_id, rules.caller_id)
    return (
        all(_plain_string(s) for s in strings)
        and (rules.payment_method is None or _plain_string(rules.payment_method))
        and _plain_money(rules.min_charge)
        and _plain_money(rules.max_charge)
        and (
            not rules.check_validity or all(_FIRST_INSTANT <= t <= _LAST_INSTANT for t in instants)
        )
    )


def _unbound(name: str, line: int) -> Refused:
    return Refused(Refusal.UNBOUND_NAME, f"{name} is not defined for this transaction", line, 1)


def _failed(message: str, line: int) -> Refused:
    return Refused(Refusal.ASSERTION_FAILED, message, line, 1)


def evaluate_rules(rules: TokenRules, env: Environment) -> Outcome:
    """What the generated script of ``rules`` decides for ``env`` (see the module docstring);
    ``rules`` must be :func:`evaluable`."""
    # The line of each statement, as sender_token_script writes them.
    line = 2
    if rules.check_validity:
        line += 1 if rules.valid_until is None else 2
    sender_line = line + 1
    line += 3
    if rules.min_charge is not None:
        line += 1
    min_line = line
    if rules.max_charge is not None:
        line += 1
    max_line = line
    declared = rules.payment_method
    given = env.payment_method
    # 1. Declarations are facts: PaymentMethod must agree with the transaction's.
    if declared is not None and given is not None and given.casefold() != declared.casefold():
        return Refused(
            Refusal.CONFLICTING_DECLARATION,
            f"PaymentMethod is declared '{declared}' but the transaction has '{given}'",
            line + 1,
            1,
        )
    # 2. Assertions, in statement order.
    if env.my_role is not Role.SENDER:
        return _failed(MSG_ROLE, 1)
    if env.operation_type.casefold() != rules.operation.casefold():
        return _failed(MSG_OPERATION, 2)
    if rules.check_validity:
        if env.transaction_timestamp < rules.valid_from:
            return _failed(MSG_NOT_YET_VALID, 3)
        if rules.valid_until is not None and env.transaction_timestamp >= rules.valid_until:
            return _failed(MSG_EXPIRED, 4)
    for offset, name, actual, wanted, message in (
        (0, "SenderAccountId", env.sender_account_id, rules.sender_id, MSG_SENDER),
        (1, "RecipientAccountId", env.recipient_account_id, rules.recipient_id, MSG_RECIPIENT),
        (2, "CallerAccountId", env.caller_account_id, rules.caller_id, MSG_CALLER),
    ):
        if actual is None:
            return _unbound(name, sender_line + offset)
        if actual != wanted:
            return _failed(message, sender_line + offset)
    amount = env.transaction_amount
    low, high = rules.min_charge, rules.max_charge
    if low is not None and (amount.currency != low.currency or amount.minor < low.minor):
        return _failed(MSG_BELOW_MINIMUM, min_line)
    if high is not None and (amount.currency != high.currency or amount.minor > high.minor):
        return _failed(MSG_ABOVE_MAXIMUM, max_line)
    # 3. Generated scripts declare no usage limits.
    return ALLOWED

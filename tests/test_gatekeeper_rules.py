"""Native evaluation of generated scripts (issue #8): the same outcome as compiling them.

The property test is the contract of :mod:`penny.gatekeeper.rules`: for any evaluable
:class:`TokenRules` and any :class:`Environment`, :func:`evaluate_rules` returns exactly what
``evaluate(compile_script(sender_token_script(rules)), env)`` returns (the same dataclass: reason,
message, line, column). The service tests check that pipeline slots take the native path only
when the token's script is the generated text, and never compile it then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from penny.domain.errors import PaymentsError
from penny.domain.errors import Refusal as PayRefusal
from penny.domain.model import Instrument, InstrumentKind, Token, TokenKind, TokenStatus
from penny.gatekeeper import (
    ALLOWED,
    BadRule,
    CompiledScript,
    Environment,
    Outcome,
    Refusal,
    Refused,
    Role,
    compile_script,
    evaluate,
    parse_datetime,
)
from penny.gatekeeper import generate as gen
from penny.gatekeeper.generate import TokenRules, sender_token_script
from penny.gatekeeper.rules import evaluable, evaluate_rules
from penny.money import Money
from penny.services import gatekeeper as gk

# -- helpers ---------------------------------------------------------------------------------

START = parse_datetime("2026-01-01T00:00:00Z").micros
END = parse_datetime("2026-07-01T00:00:00Z").micros
USD = "USD"


def compiled_outcome(rules: TokenRules, env: Environment) -> Outcome:
    script = compile_script(sender_token_script(rules))
    assert isinstance(script, CompiledScript), script
    assert script.usage_limits == ()  # generated scripts have no usage limits
    return evaluate(script, env)


def credit_rules(**changes: Any) -> TokenRules:
    rules = TokenRules(
        operation="Pay",
        sender_id="BUYER1",
        recipient_id="SHOP1",
        caller_id="SHOP1",
        valid_from=START,
        valid_until=END,
        payment_method="Debt",
        min_charge=Money(100, USD),
        max_charge=Money(5000, USD),
    )
    return dataclasses.replace(rules, **changes)


def pay_env(**changes: Any) -> Environment:
    env = Environment(
        my_role=Role.SENDER,
        operation_type="Pay",
        transaction_amount=Money(1000, USD),
        transaction_timestamp=START + 1,
        payment_method="Debt",
        sender_account_id="BUYER1",
        recipient_account_id="SHOP1",
        caller_account_id="SHOP1",
    )
    return dataclasses.replace(env, **changes)


# -- the property ------------------------------------------------------------------------------

IDS = st.one_of(
    st.sampled_from(["BUYER1", "SHOP1", "CALLER9", "", "buyer1"]),
    st.text(st.characters(exclude_characters="'\n", codec="utf-8"), max_size=12),
)
FIRST = parse_datetime("1000-01-01").micros
LAST = parse_datetime("9999-12-31T23:59:59.999999").micros
CURRENCIES = st.sampled_from(["USD", "EUR", "JPY"])
#: Instants Penny can write (years 1000 to 9999), biased to today's dates.
INSTANTS = st.one_of(
    st.integers(START - 10**12, END + 10**12),
    st.integers(FIRST, LAST),
)


@st.composite
def token_rules(draw: st.DrawFn) -> TokenRules:
    valid_from = draw(INSTANTS)
    valid_until = draw(st.none() | st.integers(valid_from - 10, valid_from + 10**14))
    if valid_until is not None:
        valid_until = min(max(valid_until, FIRST), LAST)
    currency = draw(CURRENCIES)
    charge = st.none() | st.integers(0, 10**9).map(lambda minor: Money(minor, currency))
    return TokenRules(
        operation=draw(st.sampled_from(["Pay", "FundPrepaid", "SettleDebt"]) | IDS),
        sender_id=draw(IDS),
        recipient_id=draw(IDS),
        caller_id=draw(IDS),
        valid_from=valid_from,
        valid_until=valid_until,
        payment_method=draw(st.sampled_from([None, "Prepaid", "Debt", "cc", "abt", ""])),
        min_charge=draw(charge),
        max_charge=draw(charge),
        check_validity=draw(st.booleans()),
    )


def mostly(right: Any, *wrong: Any) -> st.SearchStrategy[Any]:
    """``right`` about four times in five, else one of ``wrong``: each rule gets its turn."""
    return st.sampled_from([right] * 4 * len(wrong) + list(wrong))


@st.composite
def environments(draw: st.DrawFn, rules: TokenRules) -> Environment:
    def account(own: str) -> str | None:
        chosen: str | None = draw(mostly(own, None, own.lower(), own + "X", rules.sender_id))
        return chosen

    edges = [rules.valid_from, *([] if rules.valid_until is None else [rules.valid_until])]
    inside = rules.valid_from if rules.valid_until is None else rules.valid_until - 1
    moment = draw(
        st.sampled_from(edges).flatmap(lambda t: st.sampled_from([t - 1, t, t + 1]))
        | st.just(inside)
        | st.integers(rules.valid_from - 10**12, rules.valid_from + 10**14)
    )
    charges = [c.minor for c in (rules.min_charge, rules.max_charge) if c is not None]
    minor = draw(
        st.sampled_from(charges or [0]).flatmap(lambda m: st.sampled_from([m - 1, m, m + 1]))
        | st.integers(0, 10**10)
    )
    currency = next((c.currency for c in (rules.min_charge, rules.max_charge) if c), "USD")
    method = rules.payment_method
    methods = [None, "Prepaid", "prepaid", "PREPAID", "Debt", "debt", "cc", "Other", ""]
    return Environment(
        my_role=draw(mostly(Role.SENDER, Role.CALLER, Role.RECIPIENT)),
        operation_type=draw(
            mostly(rules.operation, rules.operation.upper(), "Pay", "pay", "Refund", "SettleDebt")
        ),
        transaction_amount=Money(max(minor, 0), draw(mostly(currency, "EUR", "JPY"))),
        transaction_timestamp=moment,
        payment_method=draw(
            st.sampled_from(methods)
            | mostly(None, method, None if method is None else method.upper())
        ),
        charge_fee_to=draw(st.sampled_from([None, "Caller", "Recipient"])),
        sender_token=draw(st.sampled_from([None, "TOKEN1"])),
        sender_account_id=account(rules.sender_id),
        recipient_account_id=account(rules.recipient_id),
        caller_account_id=account(rules.caller_id),
    )


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_native_evaluation_equals_the_compiled_script(data: st.DataObject) -> None:
    rules = data.draw(token_rules())
    env = data.draw(environments(rules))
    assert evaluable(rules)
    outcome = evaluate_rules(rules, env)
    assert outcome == compiled_outcome(rules, env)
    event(f"{outcome.reason.value} line {outcome.line}" if isinstance(outcome, Refused) else "ok")


# -- worked examples --------------------------------------------------------------------------


def refused(reason: Refusal, message: str, line: int) -> Refused:
    return Refused(reason, message, line, 1)


FAILED = Refusal.ASSERTION_FAILED


@pytest.mark.parametrize(
    ("rules", "env", "expected"),
    [
        (credit_rules(), pay_env(), ALLOWED),
        (credit_rules(), pay_env(my_role=Role.CALLER), refused(FAILED, gen.MSG_ROLE, 1)),
        # OperationType is an enumeration: compared case-insensitively.
        (credit_rules(), pay_env(operation_type="PAY"), ALLOWED),
        (credit_rules(), pay_env(operation_type="Refund"), refused(FAILED, gen.MSG_OPERATION, 2)),
        # Validity: from START included, until END excluded.
        (credit_rules(), pay_env(transaction_timestamp=START), ALLOWED),
        (
            credit_rules(),
            pay_env(transaction_timestamp=START - 1),
            refused(FAILED, gen.MSG_NOT_YET_VALID, 3),
        ),
        (credit_rules(), pay_env(transaction_timestamp=END - 1), ALLOWED),
        (
            credit_rules(),
            pay_env(transaction_timestamp=END),
            refused(FAILED, gen.MSG_EXPIRED, 4),
        ),
        # Without an end, the sender check is on line 4; a settlement token checks no validity.
        (
            credit_rules(valid_until=None),
            pay_env(sender_account_id="OTHER"),
            refused(FAILED, gen.MSG_SENDER, 4),
        ),
        (credit_rules(check_validity=False), pay_env(transaction_timestamp=END + 1), ALLOWED),
        # Account ids compare exactly; a missing one is an unbound name.
        (
            credit_rules(),
            pay_env(sender_account_id="buyer1"),
            refused(FAILED, gen.MSG_SENDER, 5),
        ),
        (
            credit_rules(),
            pay_env(recipient_account_id=None),
            refused(
                Refusal.UNBOUND_NAME, "RecipientAccountId is not defined for this transaction", 6
            ),
        ),
        (
            credit_rules(),
            pay_env(caller_account_id="THIRD"),
            refused(FAILED, gen.MSG_CALLER, 7),
        ),
        # Charges: USD 1.00 to USD 50.00 inclusive; another currency is never within them.
        (credit_rules(), pay_env(transaction_amount=Money(100, USD)), ALLOWED),
        (
            credit_rules(),
            pay_env(transaction_amount=Money(99, USD)),
            refused(FAILED, gen.MSG_BELOW_MINIMUM, 8),
        ),
        (credit_rules(), pay_env(transaction_amount=Money(5000, USD)), ALLOWED),
        (
            credit_rules(),
            pay_env(transaction_amount=Money(5001, USD)),
            refused(FAILED, gen.MSG_ABOVE_MAXIMUM, 9),
        ),
        (
            credit_rules(),
            pay_env(transaction_amount=Money(1000, "EUR")),
            refused(FAILED, gen.MSG_BELOW_MINIMUM, 8),
        ),
        (
            credit_rules(min_charge=None),
            pay_env(transaction_amount=Money(1000, "EUR")),
            refused(FAILED, gen.MSG_ABOVE_MAXIMUM, 8),
        ),
        # The declaration: unifies with no method, agrees ignoring case, conflicts first.
        (credit_rules(), pay_env(payment_method=None), ALLOWED),
        (credit_rules(), pay_env(payment_method="DEBT"), ALLOWED),
        (
            credit_rules(),
            pay_env(payment_method="Prepaid", my_role=Role.CALLER),
            refused(
                Refusal.CONFLICTING_DECLARATION,
                "PaymentMethod is declared 'Debt' but the transaction has 'Prepaid'",
                10,
            ),
        ),
        (
            credit_rules(min_charge=None, max_charge=None, valid_until=None),
            pay_env(payment_method="cc"),
            refused(
                Refusal.CONFLICTING_DECLARATION,
                "PaymentMethod is declared 'Debt' but the transaction has 'cc'",
                7,
            ),
        ),
        (credit_rules(payment_method=None), pay_env(payment_method="cc"), ALLOWED),
    ],
)
def test_worked_examples(rules: TokenRules, env: Environment, expected: Outcome) -> None:
    assert evaluate_rules(rules, env) == expected
    assert compiled_outcome(rules, env) == expected


@pytest.mark.parametrize(
    "rules",
    [
        credit_rules(sender_id="A\nB"),  # would move the following statements down a line
        credit_rules(payment_method="x" * 1025),  # longer than a string literal may be
        credit_rules(sender_id="O'Brien"),  # cannot be written at all
        credit_rules(min_charge=Money(-1, USD)),  # a literal cannot be negative
        credit_rules(max_charge=Money(10**15, USD)),  # more whole digits than money reads
        credit_rules(valid_from=parse_datetime("0999-12-31").micros - 1),  # a 3-digit year
    ],
)
def test_rules_outside_the_proven_domain_are_not_evaluated_natively(rules: TokenRules) -> None:
    assert not evaluable(rules)
    if "'" in rules.sender_id:
        return
    # Refused on the line after the sender's: a line break there moves it down.
    env = pay_env(sender_account_id=rules.sender_id, transaction_amount=Money(0, USD))
    script = compile_script(sender_token_script(rules))
    assert isinstance(script, BadRule) or evaluate(script, env) != evaluate_rules(rules, env)


def test_rules_penny_writes_are_evaluable_even_without_dates_checked() -> None:
    assert evaluable(credit_rules())
    assert evaluable(credit_rules(check_validity=False, valid_from=-(10**18)))


# -- the payments service --------------------------------------------------------------------


def instrument() -> Instrument:
    return Instrument(
        id="INSTR1",
        kind=InstrumentKind.credit,
        sender_id="BUYER1",
        recipient_id="SHOP1",
        currency=USD,
        ledger_account_id=7,
        created_at=START,
        valid_from=START,
        valid_until=END,
        credit_limit=100_000,
        min_charge=100,
        max_charge=5000,
    )


def token(script: str | None) -> Token:
    return Token(
        id="TOKEN1",
        kind=TokenKind.credit_sender,
        instrument_id="INSTR1",
        caller_id="SHOP1",
        sender_id="BUYER1",
        caller_reference="ref-1",
        status=TokenStatus.active,
        created_at=START,
        script=script,
    )


def context(**changes: Any) -> gk.Context:
    base = gk.Context(
        operation="Pay",
        amount=Money(1000, USD),
        now=START + 1,
        payment_method="Debt",
        sender_id="BUYER1",
        recipient_id="SHOP1",
        caller_id="SHOP1",
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every script text the payments service compiles."""
    texts: list[str] = []
    real: Callable[[str], CompiledScript | BadRule] = compile_script

    def spy(text: str) -> CompiledScript | BadRule:
        texts.append(text)
        return real(text)

    monkeypatch.setattr(gk, "compile_script", spy)
    return texts


def check(slot: gk.Slot, ctx: gk.Context) -> PayRefusal | None:
    guard = gk.Guard()
    try:
        guard.check([slot], ctx)
    except PaymentsError as exc:
        return exc.refusal
    guard.record([slot], ctx)
    assert guard.changed == {}  # no usage limits, nothing to count
    return None


def test_derived_and_generated_scripts_are_evaluated_without_compiling(
    compiles: list[str],
) -> None:
    generated = gk.pipeline_script(TokenKind.credit_sender, instrument(), "SHOP1")
    for stored in (None, generated):
        slot = gk.pipeline_slot(token(stored), instrument())
        assert slot.script == generated
        assert slot.rules == gk.pipeline_rules(TokenKind.credit_sender, instrument(), "SHOP1")
        assert check(slot, context()) is None
        assert check(slot, context(now=END)) is PayRefusal.instrument_expired
        assert check(slot, context(amount=Money(99, USD))) is PayRefusal.amount_below_minimum
        assert check(slot, context(payment_method="cc")) is PayRefusal.incompatible_instructions
        assert check(slot, context(caller_id="THIRD")) is PayRefusal.instrument_access_denied
        assert not gk._needs_usage(slot)
    assert compiles == []


def test_a_stored_script_that_differs_is_compiled(compiles: list[str]) -> None:
    generated = gk.pipeline_script(TokenKind.credit_sender, instrument(), "SHOP1")
    # Issued when the instrument said something else (here: a lower maximum charge).
    stored = generated.replace("'USD 50.00'", "'USD 20.00'")
    assert stored != generated
    slot = gk.pipeline_slot(token(stored), instrument())
    assert slot.rules is None
    assert slot.script == stored
    assert check(slot, context(amount=Money(2000, USD))) is None
    assert check(slot, context(amount=Money(2001, USD))) is PayRefusal.amount_above_maximum
    assert compiles
    assert set(compiles) == {stored}


@pytest.mark.parametrize(
    "ctx",
    [
        context(),
        context(now=START - 1),
        context(now=END),
        context(operation="FundPrepaid"),
        context(amount=Money(5001, USD)),
        context(amount=Money(1000, "EUR")),
        context(payment_method="Prepaid"),
        context(payment_method=None),
        context(sender_id="OTHER"),
        context(recipient_id="OTHER"),
        context(caller_id="OTHER"),
    ],
)
def test_native_and_compiled_slots_refuse_alike(ctx: gk.Context) -> None:
    native = gk.pipeline_slot(token(None), instrument())
    assert native.rules is not None
    assert check(native, ctx) == check(dataclasses.replace(native, rules=None), ctx)

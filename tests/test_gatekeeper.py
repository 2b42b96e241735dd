"""GateKeeper: the real FPS scripts, errors with positions, types, spellings, and properties."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penny.gatekeeper import (
    ALLOWED,
    BadRule,
    CompiledScript,
    Duration,
    Environment,
    Refusal,
    Refused,
    Role,
    Usage,
    UsageKind,
    compile_script,
    evaluate,
    parse,
    parse_datetime,
    parse_duration,
    print_script,
)
from penny.gatekeeper.ast import (
    Assertion,
    Compare,
    CompareOp,
    DecimalLit,
    Declaration,
    Expr,
    IntLit,
    ListExpr,
    Logic,
    LogicOp,
    Membership,
    Name,
    Script,
    StringLit,
    TypeName,
    Unary,
    UnaryOp,
)
from penny.gatekeeper.lexer import KEYWORDS, MAX_SCRIPT_BYTES
from penny.gatekeeper.parser import MAX_DEPTH
from penny.money import Money, parse_money

# -- helpers ---------------------------------------------------------------------------------

#: 2008-10-10T05:22-0700, the expiry written as '2008-10-284T05:22-0700' in Amazon's examples.
EXPIRY_284 = parse_datetime("2008-10-10T05:22-0700").micros
EXPIRY_289 = parse_datetime("2008-10-15T10:41-0700").micros
MINUTE = 60_000_000


def env(**changes: Any) -> Environment:
    base = Environment(
        my_role=Role.SENDER,
        operation_type="Pay",
        transaction_amount=parse_money("USD 0.5"),
        transaction_timestamp=EXPIRY_284 - MINUTE,
    )
    return dataclasses.replace(base, **changes)


def compiled(text: str) -> CompiledScript:
    result = compile_script(text)
    assert not isinstance(result, BadRule), result.reason_texts
    return result


def bad(text: str) -> tuple[str, ...]:
    result = compile_script(text)
    assert isinstance(result, BadRule), f"{text!r} compiled"
    return result.reason_texts


def refusal(text: str, environment: Environment) -> str | None:
    outcome = evaluate(compiled(text), environment)
    if outcome == ALLOWED:
        return None
    assert isinstance(outcome, Refused)
    return outcome.message


# -- the real scripts of the spec (§9), verbatim ---------------------------------------------

S1 = "MyRole == 'Caller' orSay 'Role does not match';"
S2 = "MyRole == 'Recipient' orSay 'Role does not match';"
S3 = "MyRole == 'Recipient' orSay 'Roles do not match';"
S4 = "MyRole=='Caller';"
S5 = "MyRole == 'Caller';"
S6 = """MyRole == 'Sender' orSay 'Role does not match';
TransactionAmount == 'USD 0.5' orSay 'Transaction amount not equal to accepted value';
TransactionTimestamp <= '2008-10-289T10:41-0700' orSay 'TransactionTimestamp used after validity';
string PaymentMethod := 'abt';
"""
S7 = """MyRole == 'Sender' orSay 'Role does not match';
string PaymentMethod := 'abt';
TransactionTimestamp <= '2008-10-284T05:22-0700' orSay 'TransactionTimestamp used after validity';
string MyTokenUsageLimit1Type := 'Amount';
money MyTokenUsageLimit1 := 'USD 100';
duration MyTokenUsageLimit2Period := '1 months';
string MyTokenUsageLimit2Type := 'Count';
integer MyTokenUsageLimit2 := 5;
"""
S8 = """MyRole == 'Sender' orSay 'Role does not match';
string PaymentMethod := 'abt';
duration MyTokenUsageLimit1Period := '2 months';
string MyTokenUsageLimit1Type := 'Amount';
TransactionTimestamp <= '2008-10-284T05:22-0700' orSay 'TransactionTimestamp used after validity';
money MyTokenUsageLimit1 := 'USD 10';
"""
S9 = """MyRole == 'Recipient' orSay 'Role does not match';
TransactionTimestamp <= '2008-10-289T03:49-0700' orSay 'TransactionTimestamp used after validity';
ChargeFeeTo == 'Caller' orSay 'Charge fees incompatible';
PaymentMethod in ('abt','ach') orSay 'Selected payment method not in the list of acceptable Payment Methods for Recipient';
"""  # noqa: E501 - verbatim
# The archived excerpt is cut off inside the second message; completed here.
S10 = """MyRole == 'Sender' orSay 'Role does not match';
OperationType == 'Refund' orSay 'Invalid Operation';
"""
S11 = "MyRole == 'Sender';\nOperationType == 'Refund';\n"
# fpys's template with `%f` and `%s` filled in.
S12 = """MyRole == 'Recipient' orSay 'Role does not match';
TransactionAmount == 'USD 19.950000';
SenderToken == 'S1T2O3K4E5N6';
"""
S13 = """MyRole=='Recipient' orSay 'Roles do not match';
PaymentMethod in 'abt, ach, cc';
"""

REAL_SCRIPTS = [S1, S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, S12, S13]

CASES: list[tuple[str, str, Environment, str | None]] = [
    ("1 caller ok", S1, env(my_role=Role.CALLER), None),
    ("1 wrong role", S1, env(my_role=Role.SENDER), "Role does not match"),
    ("2 recipient ok", S2, env(my_role=Role.RECIPIENT), None),
    ("2 wrong role", S2, env(my_role=Role.CALLER), "Role does not match"),
    ("3 recipient ok", S3, env(my_role=Role.RECIPIENT), None),
    ("3 wrong role", S3, env(my_role=Role.SENDER), "Roles do not match"),
    ("4 caller ok", S4, env(my_role=Role.CALLER), None),
    (
        "4 no orSay",
        S4,
        env(my_role=Role.RECIPIENT),
        "Assertion failed at line 1:1: MyRole == 'Caller'",
    ),
    ("5 caller ok", S5, env(my_role=Role.CALLER), None),
    ("5 wrong role", S5, env(), "Assertion failed at line 1:1: MyRole == 'Caller'"),
    ("6 ok", S6, env(transaction_timestamp=EXPIRY_289), None),
    ("6 ok, abt given", S6, env(payment_method="ABT"), None),
    ("6 role", S6, env(my_role=Role.CALLER), "Role does not match"),
    (
        "6 amount",
        S6,
        env(transaction_amount=parse_money("USD 0.51")),
        "Transaction amount not equal to accepted value",
    ),
    (
        "6 other currency",
        S6,
        env(transaction_amount=parse_money("EUR 0.5")),
        "Transaction amount not equal to accepted value",
    ),
    (
        "6 expired",
        S6,
        env(transaction_timestamp=EXPIRY_289 + 1),
        "TransactionTimestamp used after validity",
    ),
    (
        "6 method conflict",
        S6,
        env(payment_method="cc"),
        "PaymentMethod is declared 'abt' but the transaction has 'cc'",
    ),
    ("7 ok", S7, env(transaction_amount=parse_money("USD 100")), None),
    ("7 role", S7, env(my_role=Role.RECIPIENT), "Role does not match"),
    (
        "7 expired",
        S7,
        env(transaction_timestamp=EXPIRY_284 + 1),
        "TransactionTimestamp used after validity",
    ),
    (
        "7 lifetime amount",
        S7,
        env(usage={1: Usage(parse_money("USD 99.51"), 3)}),
        "Token usage limit 1 exceeded",
    ),
    (
        "7 lifetime amount exactly",
        S7,
        env(usage={1: Usage(parse_money("USD 99.50"), 3)}),
        None,
    ),
    (
        "7 monthly count",
        S7,
        env(usage={2: Usage(parse_money("USD 1"), 5)}),
        "Token usage limit 2 exceeded",
    ),
    ("7 fifth use", S7, env(usage={2: Usage(parse_money("USD 1"), 4)}), None),
    ("8 ok", S8, env(transaction_amount=parse_money("USD 10")), None),
    ("8 role", S8, env(my_role=Role.CALLER), "Role does not match"),
    (
        "8 expired",
        S8,
        env(transaction_timestamp=EXPIRY_284 + MINUTE),
        "TransactionTimestamp used after validity",
    ),
    (
        "8 over the period",
        S8,
        env(transaction_amount=parse_money("USD 10.01")),
        "Token usage limit 1 exceeded",
    ),
    (
        "8 wrong currency",
        S8,
        env(transaction_amount=parse_money("EUR 1")),
        "Token usage limit 1 exceeded",
    ),
]

RECIPIENT = env(my_role=Role.RECIPIENT, charge_fee_to="Caller", payment_method="abt")
CASES += [
    ("9 ok", S9, RECIPIENT, None),
    ("9 ach, upper case", S9, dataclasses.replace(RECIPIENT, payment_method="ACH"), None),
    ("9 role", S9, dataclasses.replace(RECIPIENT, my_role=Role.SENDER), "Role does not match"),
    (
        "9 expired",
        S9,
        dataclasses.replace(
            RECIPIENT, transaction_timestamp=parse_datetime("2008-10-15T03:50-0700").micros
        ),
        "TransactionTimestamp used after validity",
    ),
    (
        "9 fees",
        S9,
        dataclasses.replace(RECIPIENT, charge_fee_to="Recipient"),
        "Charge fees incompatible",
    ),
    (
        "9 method",
        S9,
        dataclasses.replace(RECIPIENT, payment_method="cc"),
        "Selected payment method not in the list of acceptable Payment Methods for Recipient",
    ),
    (
        "9 no method",
        S9,
        dataclasses.replace(RECIPIENT, payment_method=None),
        "PaymentMethod is not defined for this transaction",
    ),
    ("10 ok", S10, env(operation_type="Refund"), None),
    ("10 role", S10, env(operation_type="Refund", my_role=Role.CALLER), "Role does not match"),
    ("10 operation", S10, env(operation_type="Pay"), "Invalid Operation"),
    ("11 ok", S11, env(operation_type="refund"), None),
    ("11 operation", S11, env(), "Assertion failed at line 2:1: OperationType == 'Refund'"),
    (
        "12 ok",
        S12,
        env(
            my_role=Role.RECIPIENT,
            transaction_amount=parse_money("USD 19.95"),
            sender_token="S1T2O3K4E5N6",
        ),
        None,
    ),
    (
        "12 amount",
        S12,
        env(my_role=Role.RECIPIENT, sender_token="S1T2O3K4E5N6"),
        "Assertion failed at line 2:1: TransactionAmount == 'USD 19.950000'",
    ),
    (
        "12 token is case-sensitive",
        S12,
        env(
            my_role=Role.RECIPIENT,
            transaction_amount=parse_money("USD 19.95"),
            sender_token="s1t2o3k4e5n6",
        ),
        "Assertion failed at line 3:1: SenderToken == 'S1T2O3K4E5N6'",
    ),
    (
        "12 no sender token",
        S12,
        env(my_role=Role.RECIPIENT, transaction_amount=parse_money("USD 19.95")),
        "SenderToken is not defined for this transaction",
    ),
    ("13 ok", S13, env(my_role=Role.RECIPIENT, payment_method="cc"), None),
    ("13 role", S13, env(payment_method="cc"), "Roles do not match"),
    (
        "13 method",
        S13,
        env(my_role=Role.RECIPIENT, payment_method="Prepaid"),
        "Assertion failed at line 2:1: PaymentMethod in 'abt, ach, cc'",
    ),
]


@pytest.mark.parametrize(
    ("script", "environment", "expected"),
    [pytest.param(s, e, m, id=name) for name, s, e, m in CASES],
)
def test_real_scripts_evaluate_as_written(
    script: str, environment: Environment, expected: str | None
) -> None:
    assert refusal(script, environment) == expected


@pytest.mark.parametrize("script", REAL_SCRIPTS)
def test_real_scripts_round_trip_and_are_deterministic(script: str) -> None:
    tree = parse(script)
    assert parse(print_script(tree)) == tree
    c = compiled(script)
    assert compile_script(script) is c  # cached
    for _, s, e, _ in CASES:
        if s == script:
            assert evaluate(c, e) == evaluate(c, e)


def test_usage_limits_of_the_multi_use_example() -> None:
    limits = compiled(S7).usage_limits
    assert [(u.index, u.kind, u.limit, u.period) for u in limits] == [
        (1, UsageKind.AMOUNT, Money(10_000, "USD"), None),
        (2, UsageKind.COUNT, 5, Duration(1, 0)),
    ]
    assert compiled(S7).declared("paymentmethod") == "abt"


def test_refusal_reasons_and_positions() -> None:
    outcome = evaluate(compiled(S6), env(transaction_amount=parse_money("USD 1")))
    assert outcome == Refused(
        Refusal.ASSERTION_FAILED, "Transaction amount not equal to accepted value", 2, 1
    )
    outcome = evaluate(compiled(S6), env(payment_method="cc"))
    assert isinstance(outcome, Refused)
    assert (outcome.reason, outcome.line) == (Refusal.CONFLICTING_DECLARATION, 4)
    outcome = evaluate(compiled(S8), env(transaction_amount=parse_money("USD 11")))
    assert isinstance(outcome, Refused)
    assert (outcome.reason, outcome.line) == (Refusal.USAGE_LIMIT_EXCEEDED, 6)
    outcome = evaluate(compiled(S9), dataclasses.replace(RECIPIENT, payment_method=None))
    assert isinstance(outcome, Refused)
    assert (outcome.reason, outcome.line, outcome.column) == (Refusal.UNBOUND_NAME, 4, 1)


# -- literals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2008-10-289T10:41-0700", "2008-10-15T10:41-0700"),
        ("2008-10-284T05:22-0700", "2008-10-10T05:22-0700"),
        ("2008-10-15T17:41Z", "2008-10-15T10:41-0700"),
        ("2008-10-15T17:41:00+00:00", "2008-10-15T17:41"),
        ("2008-10-15", "2008-10-15T00:00Z"),
    ],
)
def test_datetimes(text: str, iso: str) -> None:
    assert parse_datetime(text) == parse_datetime(iso)


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("1 months", Duration(1, 0)),
        ("2 Months", Duration(2, 0)),
        ("1 Year", Duration(12, 0)),
        ("7 Days", Duration(0, 7 * 86_400_000_000)),
        ("1 week", Duration(0, 7 * 86_400_000_000)),
        ("3 hours", Duration(0, 3 * 3_600_000_000)),
    ],
)
def test_durations(text: str, duration: Duration) -> None:
    assert parse_duration(text) == duration


# -- errors with positions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reasons"),
    [
        ("Invalid Instruction;", ("Parse errors: line 1:9: unexpected token: instruction",)),
        ("MyRole == 'Caller", ("Parse errors: line 1:11: expecting ''', found '<EOF>'",)),
        ("MyRole == 'Caller'", ("Parse errors: line 1:19: expecting ';', found '<EOF>'",)),
        (
            "MyRole == 'Caller' orSay;",
            ("Parse errors: line 1:25: unexpected token: ;",),
        ),
        ("MyRole == ;", ("Parse errors: line 1:11: unexpected token: ;",)),
        (
            "MyRole == 'Caller';\n  string := 'abt';",
            ("Parse errors: line 2:10: unexpected token: :=",),
        ),
        ("money X = 'USD 1';", ("Parse errors: line 1:9: unexpected char: '='",)),
        ("MyRole == 'a' # x;", ("Parse errors: line 1:15: unexpected char: '#'",)),
        ("1 < 2 < 3;", ("Parse errors: line 1:7: unexpected token: <",)),
        ("PaymentMethod in ();", ("Parse errors: line 1:19: unexpected token: )",)),
        ("PaymentMethod in ('a' 'b');", ("Parse errors: line 1:23: expecting ')', found ''b''",)),
        (
            "a ==;\nb == 1 2;\nc;",
            (
                "Parse errors: line 1:5: unexpected token: ;",
                "Parse errors: line 2:8: unexpected token: 2",
            ),
        ),
        ("x := 1;", ("Parse errors: line 1:3: unexpected token: :=",)),
        ("1 == 1 == (2 == 2);", ("Parse errors: line 1:8: unexpected token: ==",)),
        ("12abc == 1;", ("Parse errors: line 1:3: unexpected char: 'a'",)),
    ],
)
def test_parse_errors(text: str, reasons: tuple[str, ...]) -> None:
    assert bad(text) == reasons


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("TransactionAmount < 5;", "line 1:19: cannot compare money with integer"),
        ("TransactionAmount == 'ten dollars';", "line 1:22: 'ten dollars' is not money"),
        ("Foo == 1;", "line 1:1: unknown name: Foo"),
        ("MyRole < 'Caller';", "line 1:8: '<' cannot order string values"),
        ("MyRole;", "line 1:1: a statement must be boolean, not string"),
        ("'1 months' > '29 days';", "line 1:12: '>' cannot order string values"),
        ("MyRole == 'a' and 1;", "line 1:19: 'and' needs a boolean, not integer"),
        ("not TransactionAmount;", "line 1:5: 'not' needs a boolean, not money"),
        ("-MyRole == 'x';", "line 1:1: 'negate' needs integer, double, money or duration"),
        ("'USD 1' == 'EUR 1';", ""),  # two strings: fine, see test below
        ("TransactionTimestamp <= '2008-13-01';", "line 1:25: '2008-13-01' is not a valid"),
        ("TransactionTimestamp <= '2008-10-320';", "line 1:25: '2008-10-320': day of year 320"),
        ("PaymentMethod in ('abt', 5);", "line 1:26: list item is integer, expected string"),
        ("integer X := 'abc';", "line 1:9: X is declared integer but its value is string"),
        ("integer X := 1; integer x := 2;", "line 1:25: x is already declared at line 1:9"),
        ("money TransactionAmount := 'USD 1';", "line 1:7: TransactionAmount is set by the"),
        ("integer PaymentMethod := 1;", "line 1:9: PaymentMethod is a string"),
        ("integer X := Y; integer Y := 1;", "line 1:9: the value of X must be a constant"),
        ("money MyTokenUsageLimit1 := 'USD 1';", "line 1:1: usage limit 1 has no"),
        ("string MyTokenUsageLimit4Type := 'Count';", "line 1:8: usage limit index must be"),
        (
            "string MyTokenUsageLimit1Type := 'Count'; money MyTokenUsageLimit1 := 'USD 1';",
            "line 1:43: a Count limit must be a positive integer",
        ),
        (
            "string MyTokenUsageLimit1Type := 'Amount'; integer MyTokenUsageLimit1 := 2;",
            "an Amount limit must be money",
        ),
        (
            "string MyTokenUsageLimit1Type := 'Amount'; money MyTokenUsageLimit1 := 'USD 1';"
            " duration MyTokenUsageLimit1Period := '1 minute';",
            "is not a duration",
        ),
        (
            "string MyTokenUsageLimit1Type := 'Money'; money MyTokenUsageLimit1 := 'USD 1';",
            "MyTokenUsageLimit1Type must be 'Amount' or 'Count'",
        ),
        ("TransactionAmount in ('USD 1', 'EUR 1');", ""),
        (
            "string MyTokenUsageLimit1Type := 'count'; integer MyTokenUsageLimit1 := 3;"
            " duration MyTokenUsageLimit1Period := '0 hours';",
            "line 1:76: a usage period must be at least one hour",
        ),
        (
            "string MyTokenUsageLimit1Type := 'Count'; integer MyTokenUsageLimit1 := 0;",
            "line 1:43: a Count limit must be a positive integer",
        ),
        (
            "string MyTokenUsageLimit1Type := 'Amount'; money MyTokenUsageLimit1 := 'USD 1';"
            " datetime MyTokenUsageLimit1StartTime := '2008-10-01T00:00Z';",
            "",
        ),
        ("MyTokenUsageLimit1 == 1;", "line 1:1: unknown name: MyTokenUsageLimit1"),
        ("'USD 1' == -'EUR 1';", "line 1:12: 'negate' needs integer, double, money or"),
        ("money M := 'USD 1'; M < 'EUR 2';", ""),  # false at run time, see test_expressions
    ],
)
def test_type_errors(text: str, reason: str) -> None:
    result = compile_script(text)
    if not reason:
        assert not isinstance(result, BadRule)
        return
    assert isinstance(result, BadRule)
    assert result.reason_texts[0].startswith(f"Type errors: {reason}") or (
        reason in result.reason_texts[0]
    ), result.reason_texts


def test_several_type_errors_are_reported_in_order() -> None:
    assert bad("Foo == 1;\nMyRole < 'x';\n") == (
        "Type errors: line 1:1: unknown name: Foo",
        "Type errors: line 2:8: '<' cannot order string values",
    )


# -- operator spellings ----------------------------------------------------------------------

SPELLINGS = [
    ("==", "equals"),
    ("!=", "notEquals"),
    ("<", "lessThan"),
    (">", "greaterThan"),
    ("<=", "lessThanOrEquals"),
    (">=", "greaterThanOrEquals"),
]


@pytest.mark.parametrize(("symbol", "word"), SPELLINGS)
@pytest.mark.parametrize("amount", ["USD 9.99", "USD 10", "USD 10.01"])
def test_comparison_spellings_agree(symbol: str, word: str, amount: str) -> None:
    by_symbol = f"TransactionAmount {symbol} 'USD 10';"
    by_word = f"TransactionAmount {word} 'USD 10';"
    assert parse(by_symbol) == parse(by_word) == parse(by_word.replace(word, word.upper()))
    e = env(transaction_amount=parse_money(amount))
    assert evaluate(compiled(by_symbol), e) == evaluate(compiled(by_word), e)


@pytest.mark.parametrize(
    ("symbolic", "words"),
    [
        ("a == 1 && b == 2 || !(c == 3);", "a equals 1 and b equals 2 or not (c equals 3);"),
        ("-a < -1;", "negate a lessThan negate 1;"),
        ("not a == 1;", "! a == 1;"),
        ("a in (1, 2) || a notIn (3);", "a in (1, 2) or a notIn (3);"),
    ],
)
def test_logic_spellings_agree(symbolic: str, words: str) -> None:
    assert parse(symbolic) == parse(words)


@pytest.mark.parametrize(
    ("expr", "holds"),
    [
        ("1 < 2 and 2 < 3", True),
        ("1 < 2 and 3 < 2", False),
        ("3 < 2 or 1 < 2", True),
        ("not 1 < 2", False),
        ("! (1 > 2)", True),
        ("-1 < 0", True),
        ("negate 2.5 lessThan -2", True),
        ("1 == 1.0", True),
        ("2 in (1, 2, 3)", True),
        ("2 notIn (1, 3)", True),
        ("'USD 5' in (TransactionAmount)", False),
        ("TransactionAmount in ('USD 0.50', 'USD 1')", True),
        ("TransactionAmount notIn ('USD 0.50')", False),
        ("-TransactionAmount < 'USD 0'", True),
        ("TransactionAmount > -'USD 1'", True),
        ("TransactionAmount < 'EUR 1'", False),
        ("TransactionAmount != 'EUR 0.5'", True),
        ("TransactionTimestamp < '2008-10-10T12:22Z'", True),
        ("TransactionTimestamp >= '2008-10-10T12:21Z'", True),
        ("MyRole == 'SENDER'", True),
        ("OperationType in ('pay', 'refund')", True),
        ("(1 == 1) == (2 == 2)", True),
        ("(1 == 1) != (2 < 1)", True),
    ],
)
def test_expressions(expr: str, holds: bool) -> None:
    assert evaluate(compiled(f"{expr};"), env()).allowed is holds


def test_typed_declarations_give_context() -> None:
    text = (
        "duration P := '1 months'; duration Q := '29 days'; P > Q; P <= '31 days';"
        " money Cap := 'USD 1'; TransactionAmount <= Cap; double D := 1; D == 1.00;"
        " datetime Start := '2008-10-01'; TransactionTimestamp > Start;"
        " boolean B := 1 < 2; B; integer N := -5; N < 0 and -N == 5;"
    )
    assert evaluate(compiled(text), env()) == ALLOWED


# -- limits ----------------------------------------------------------------------------------


def test_limits_are_bad_rules_not_crashes() -> None:
    assert "longer than" in bad("a == 1;" * (MAX_SCRIPT_BYTES // 7 + 1))[0]
    deep = "(" * (MAX_DEPTH + 5) + "1 == 1" + ")" * (MAX_DEPTH + 5) + ";"
    assert "nested deeper" in bad(deep)[0]
    assert "nested deeper" in bad("not " * 200 + "1 == 1;")[0]
    assert "nested deeper" in bad("1 == 1" + " and 1 == 1" * 100 + ";")[0]
    assert "list longer" in bad("1 in (" + ", ".join(["1"] * 300) + ");")[0]
    assert "tokens" in bad("1 == 1 and" * 3000)[0]
    assert "string longer" in bad("MyRole == '" + "x" * 2000 + "';")[0]
    assert "number longer" in bad("1 == " + "9" * 40 + ";")[0]
    assert "not money" in bad("TransactionAmount == 'USD " + "9" * 30 + "';")[0]


# -- properties ------------------------------------------------------------------------------

GK_TEXT = st.text(
    alphabet=st.sampled_from(list("abMyRole=<>!&|-();,:' \n0123456789.TUSD")), max_size=200
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), GK_TEXT))
def test_any_text_is_a_script_or_a_bad_rule(text: str) -> None:
    started = time.monotonic()
    result = compile_script(text)
    assert isinstance(result, CompiledScript | BadRule)
    if isinstance(result, BadRule):
        assert all(r.startswith(("Parse errors: ", "Type errors: ")) for r in result.reason_texts)
    else:
        outcome = evaluate(result, env())
        assert outcome == evaluate(result, env())
    assert time.monotonic() - started < 1


NAMES = st.sampled_from(
    ["MyRole", "TransactionAmount", "PaymentMethod", "X", "limitA", "senderToken"]
).filter(lambda n: n.lower() not in KEYWORDS)
LEAVES: st.SearchStrategy[Expr] = st.one_of(
    st.builds(StringLit, st.text(alphabet="abc USD019.-T:", max_size=12)),
    st.builds(IntLit, st.integers(0, 10**12)),
    st.builds(
        DecimalLit,
        st.tuples(st.integers(0, 999), st.integers(0, 999)).map(lambda p: f"{p[0]}.{p[1]}"),
    ),
    st.builds(Name, NAMES),
)


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(Unary, st.sampled_from(UnaryOp), children),
        st.builds(Logic, st.sampled_from(LogicOp), children, children),
        st.builds(Compare, st.sampled_from(CompareOp), children, children),
        st.builds(
            Membership,
            children,
            st.booleans(),
            st.one_of(
                st.builds(ListExpr, st.lists(children, min_size=1, max_size=3).map(tuple)),
                st.builds(StringLit, st.text(alphabet="abc, ", max_size=10)),
            ),
        ),
    )


EXPRS = st.recursive(LEAVES, _extend, max_leaves=12)
STATEMENTS = st.one_of(
    st.builds(Assertion, EXPRS, st.none() | st.text(alphabet="abc xyz", max_size=10)),
    st.builds(Declaration, st.sampled_from(TypeName), NAMES, EXPRS),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STATEMENTS, max_size=5).map(lambda s: Script(tuple(s))))
def test_generated_trees_round_trip_through_the_printer(script: Script) -> None:
    text = print_script(script)
    assert parse(text) == script
    result = compile_script(text)
    if isinstance(result, CompiledScript):
        assert evaluate(result, env()) == evaluate(result, env())


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(REAL_SCRIPTS),
    st.sampled_from(Role),
    st.integers(0, 20_000),
    st.sampled_from(["USD", "EUR"]),
    st.integers(EXPIRY_284 - 10 * MINUTE, EXPIRY_289 + 10 * MINUTE),
    st.sampled_from([None, "abt", "ach", "cc", "ABT"]),
    st.integers(0, 10),
)
def test_evaluation_is_deterministic(
    script: str, role: Role, minor: int, currency: str, at: int, method: str | None, count: int
) -> None:
    e = env(
        my_role=role,
        transaction_amount=Money(minor, currency),
        transaction_timestamp=at,
        payment_method=method,
        usage={1: Usage(Money(minor, currency), count), 2: Usage(Money(0, "USD"), count)},
    )
    c = compiled(script)
    assert evaluate(c, e) == evaluate(c, e) == evaluate(compiled(print_script(c.script)), e)


def test_the_examples_in_the_language_reference_compile() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "gatekeeper.md").read_text("utf-8")
    examples = doc.split("## 2.")[0].split("```")[1::2]
    assert len(examples) == 6
    for example in examples:
        script = compiled(example)
        assert parse(print_script(script.script)) == script.script
    multi_use = compiled(examples[3])
    e = env(transaction_amount=parse_money("USD 30"), usage={2: Usage(parse_money("USD 0"), 4)})
    assert evaluate(multi_use, e) == ALLOWED
    assert evaluate(multi_use, env(transaction_amount=parse_money("USD 30.01"))) == Refused(
        Refusal.ASSERTION_FAILED,
        "At most USD 30 per payment",
        3,
        1,  # the block opens on a newline
    )


# -- usage windows ---------------------------------------------------------------------------


def test_usage_windows() -> None:
    from penny.gatekeeper.usage import UsageRecord, add_months, window_start

    jan31 = parse_datetime("2026-01-31T12:00Z").micros
    feb28 = parse_datetime("2026-02-28T12:00Z").micros
    mar31 = parse_datetime("2026-03-31T12:00Z").micros
    assert add_months(jan31, 1) == feb28
    assert add_months(jan31, 2) == mar31  # counted from the anchor: no drift to the 28th
    month = Duration(1, 0)
    assert window_start(jan31, month, jan31) == jan31
    assert window_start(jan31, month, feb28 - 1) == jan31
    assert window_start(jan31, month, feb28) == feb28
    assert window_start(jan31, month, mar31 + 1) == mar31
    assert window_start(jan31, month, jan31 - 5) == jan31  # before the start: the first window
    day = Duration(0, 86_400_000_000)
    assert window_start(0, day, 3 * 86_400_000_000 + 7) == 3 * 86_400_000_000
    assert window_start(5, None, 10**15) == 5  # no period: the token's life
    record = UsageRecord(0, 300, 2)
    assert record.current(0) == (300, 2)
    assert record.current(86_400_000_000) == (0, 0)
    assert record.after_use(0, 100, "USD") == UsageRecord(0, 400, 3)
    assert record.after_use(9, 100, "USD") == UsageRecord(9, 100, 1, 300, 2)


def test_evaluation_time_is_bounded_for_the_largest_scripts() -> None:
    """The worst scripts the limits allow evaluate in well under a millisecond each."""
    widest = "MyRole in (" + ", ".join(f"'r{i}'" for i in range(256)) + ") or 1 == 1;\n"
    deepest = "(" * 30 + "1 == 1" + ")" * 30 + " and " + " and ".join(["2 < 3"] * 30) + ";\n"
    script = compiled((widest + deepest) * 10)  # near the token limit (8192)
    started = time.perf_counter()
    for _ in range(10):
        assert evaluate(script, env()) == ALLOWED
    assert (time.perf_counter() - started) / 10 < 0.5

"""Money: parsing at the edges, rendering (FPS and plain), arithmetic and half-up percentages."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penny.money import (
    CURRENCY_SCALES,
    MAX_INTEGER_DIGITS,
    MAX_MINOR_UNITS,
    Money,
    MoneyError,
    currency_scale,
    parse_amount,
    parse_money,
    parse_positive_amount,
    percent_of,
)

# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("0.01", "USD", 1),
        ("25", "USD", 2500),
        ("25.1", "USD", 2510),
        ("25.10", "USD", 2510),
        ("0", "USD", 0),
        ("0.00", "USD", 0),
        ("007.50", "USD", 750),
        ("1.000000", "USD", 100),  # FPS's own rendering: zeros beyond the scale lose nothing
        ("10.2500000", "EUR", 1025),
        ("9999999999999.99", "USD", 999_999_999_999_999),  # 13 integer digits, the maximum
        ("25", "JPY", 25),
        ("25.000", "JPY", 25),
        ("1.234", "BHD", 1234),
        ("1.2", "BHD", 1200),
        ("0.001", "KWD", 1),
    ],
)
def test_parse_amount_accepts(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("0.001", "USD", "'0.001' has more than 2 decimal places for USD"),
        ("1.0001", "BHD", "'1.0001' has more than 3 decimal places for BHD"),
        ("25.5", "JPY", "'25.5' has more than 0 decimal places for JPY"),
        ("-1", "USD", "'-1' is negative: it must be positive"),
        ("-1.00", "USD", "'-1.00' is negative: it must be positive"),
        ("-1e3", "USD", "'-1e3' is not a plain decimal number"),
        ("--1", "USD", "'--1' is not a plain decimal number"),
        ("+1", "USD", "'+1' is not a plain decimal number"),
        ("1e3", "USD", "'1e3' is not a plain decimal number"),
        ("1E3", "USD", "'1E3' is not a plain decimal number"),
        ("NaN", "USD", "'NaN' is not a plain decimal number"),
        ("nan", "USD", "'nan' is not a plain decimal number"),
        ("Infinity", "USD", "'Infinity' is not a plain decimal number"),
        ("inf", "USD", "'inf' is not a plain decimal number"),
        ("", "USD", "amount is empty"),
        (" 1", "USD", "' 1' is not a plain decimal number"),
        ("1 ", "USD", "'1 ' is not a plain decimal number"),
        ("1\n", "USD", "'1\\n' is not a plain decimal number"),
        ("1.", "USD", "'1.' is not a plain decimal number"),
        (".5", "USD", "'.5' is not a plain decimal number"),
        ("1,00", "USD", "'1,00' is not a plain decimal number"),
        ("1_000", "USD", "'1_000' is not a plain decimal number"),
        ("0x10", "USD", "'0x10' is not a plain decimal number"),
        ("\u0661\u0662", "USD", "is not a plain decimal number"),  # Arabic-Indic digits
        ("\uff11", "USD", "is not a plain decimal number"),  # a full-width digit
        ("12345678901234", "USD", "'12345678901234' is too large"),  # 14 integer digits
        ("1" * 25, "USD", "amount is too long"),
        ("0." + "0" * 30, "USD", "amount is too long"),
        ("1", "XXX", "unsupported currency 'XXX'"),
        ("1", "usd", "unsupported currency 'usd'"),
    ],
)
def test_parse_amount_rejects_with_a_clear_message(text: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=re.escape(message)):
        parse_amount(text, currency)


def test_parse_positive_amount_refuses_zero_and_says_why() -> None:
    assert parse_positive_amount("0.01", "USD") == Money(1, "USD")
    for zero in ("0", "0.00", "000.000000"):
        with pytest.raises(
            MoneyError, match=re.escape(f"amount {zero!r} is zero: it must be positive")
        ):
            parse_positive_amount(zero, "USD")
    with pytest.raises(MoneyError, match="is negative: it must be positive"):
        parse_positive_amount("-1.00", "USD")


def test_money_error_is_a_value_error() -> None:
    # Edges catch ValueError for "bad input"; MoneyError must be one.
    assert issubclass(MoneyError, ValueError)


def test_the_integer_digit_limit_counts_significant_digits_only() -> None:
    assert MAX_INTEGER_DIGITS == 13
    assert parse_amount("0" * 5 + "1" * 13, "USD") == Money(1_111_111_111_111 * 100, "USD")
    with pytest.raises(MoneyError, match="too large"):
        parse_amount("1" * 14, "JPY")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("USD 10.25", Money(1025, "USD")),
        ("JPY 500", Money(500, "JPY")),
        ("BHD 0.005", Money(5, "BHD")),
        ("EUR 1.000000", Money(100, "EUR")),
    ],
)
def test_parse_money(text: str, expected: Money) -> None:
    assert parse_money(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("USD10.25", "money 'USD10.25' must look like 'USD 10.25'"),
        ("10.25", "must look like 'USD 10.25'"),
        ("", "must look like 'USD 10.25'"),
        ("XXX 1", "unsupported currency 'XXX'"),
        ("USD  1", "not a plain decimal number"),
        ("USD ", "amount is empty"),
        ("USD -1", "is negative: it must be positive"),
        ("USD 0.001", "more than 2 decimal places for USD"),
    ],
)
def test_parse_money_rejects(text: str, message: str) -> None:
    with pytest.raises(MoneyError, match=re.escape(message)):
        parse_money(text)


# -- the type itself -----------------------------------------------------------------------


def test_money_rejects_a_float_or_bool_minor() -> None:
    not_an_int: Any = 1.5
    with pytest.raises(TypeError, match=r"Money\.minor must be an int, not float"):
        Money(not_an_int, "USD")
    with pytest.raises(TypeError, match="not bool"):
        Money(True, "USD")


def test_money_rejects_unknown_currency_and_out_of_range_amounts() -> None:
    with pytest.raises(MoneyError, match="unsupported currency 'XXX'"):
        Money(1, "XXX")
    with pytest.raises(MoneyError, match="amount is out of range"):
        Money(MAX_MINOR_UNITS + 1, "USD")
    with pytest.raises(MoneyError, match="amount is out of range"):
        Money(-MAX_MINOR_UNITS - 1, "USD")
    assert Money(MAX_MINOR_UNITS, "USD").minor == 2**63 - 1
    assert Money(-MAX_MINOR_UNITS, "USD").minor == -(2**63) + 1


def test_money_is_immutable_and_hashable() -> None:
    m = Money(100, "USD")
    with pytest.raises(AttributeError):
        m.minor = 5  # type: ignore[misc]
    assert {Money(100, "USD"), Money(100, "USD"), Money(100, "EUR")} == {
        Money(100, "USD"),
        Money(100, "EUR"),
    }
    assert Money(100, "USD") != Money(100, "EUR")


def test_currency_scales() -> None:
    assert currency_scale("USD") == 2
    assert currency_scale("JPY") == 0
    assert currency_scale("KRW") == 0
    assert currency_scale("BHD") == 3
    assert currency_scale("KWD") == 3
    with pytest.raises(MoneyError, match="unsupported currency 'ZZZ'"):
        currency_scale("ZZZ")


# -- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "fps", "plain"),
    [
        (Money(100, "USD"), "1.000000", "1.00"),
        (Money(1, "USD"), "0.010000", "0.01"),
        (Money(0, "USD"), "0.000000", "0.00"),
        (Money(2510, "USD"), "25.100000", "25.10"),
        (Money(999_999_999_999_999, "USD"), "9999999999999.990000", "9999999999999.99"),
        (Money(-5, "USD"), "-0.050000", "-0.05"),
        (Money(-12345, "EUR"), "-123.450000", "-123.45"),
        (Money(25, "JPY"), "25.000000", "25"),
        (Money(0, "JPY"), "0.000000", "0"),
        (Money(-7, "KRW"), "-7.000000", "-7"),
        (Money(1234, "BHD"), "1.234000", "1.234"),
        (Money(5, "BHD"), "0.005000", "0.005"),
        (Money(1000, "KWD"), "1.000000", "1.000"),
    ],
)
def test_rendering(money: Money, fps: str, plain: str) -> None:
    assert money.fps() == fps
    assert money.plain() == plain
    assert str(money) == f"{money.currency} {plain}"


# -- arithmetic ----------------------------------------------------------------------------


def test_arithmetic() -> None:
    a, b = Money(150, "USD"), Money(25, "USD")
    assert a + b == Money(175, "USD")
    assert a - b == Money(125, "USD")
    assert b - a == Money(-125, "USD")
    assert -a == Money(-150, "USD")
    assert Money.zero("JPY") == Money(0, "JPY")
    assert a.is_positive
    assert not Money.zero("USD").is_positive
    assert not Money(-1, "USD").is_positive


def test_comparisons() -> None:
    one, two = Money(1, "USD"), Money(2, "USD")
    assert one < two
    assert one <= two
    assert one <= Money(1, "USD")
    assert two > one
    assert two >= one
    assert two >= Money(2, "USD")
    assert not two < one
    assert not one > two
    assert sorted([two, one, Money(-3, "USD")]) == [Money(-3, "USD"), one, two]


def test_mixing_currencies_is_refused() -> None:
    usd, eur = Money(1, "USD"), Money(1, "EUR")
    with pytest.raises(MoneyError, match="currency mismatch: USD vs EUR"):
        _ = usd + eur
    with pytest.raises(MoneyError, match="currency mismatch: USD vs EUR"):
        _ = usd - eur
    with pytest.raises(MoneyError, match="currency mismatch: EUR vs USD"):
        _ = eur < usd
    with pytest.raises(MoneyError, match="currency mismatch"):
        _ = eur <= usd
    with pytest.raises(MoneyError, match="currency mismatch"):
        _ = eur > usd
    with pytest.raises(MoneyError, match="currency mismatch"):
        _ = eur >= usd


def test_arithmetic_overflow_is_refused() -> None:
    with pytest.raises(MoneyError, match="out of range"):
        _ = Money(MAX_MINOR_UNITS, "USD") + Money(1, "USD")
    with pytest.raises(MoneyError, match="out of range"):
        _ = Money(-MAX_MINOR_UNITS, "USD") - Money(1, "USD")


# -- percentages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "basis_points", "expected"),
    [
        (1000, "USD", 290, 29),  # 2.9% of $10.00 = 29.0 cents
        (17, "USD", 290, 0),  # 0.493 cents -> 0
        (18, "USD", 290, 1),  # 0.522 cents -> 1
        (1, "USD", 5000, 1),  # 0.5 -> 1: half rounds up
        (1, "USD", 4999, 0),  # 0.4999 -> 0
        (3, "USD", 5000, 2),  # 1.5 -> 2
        (100, "USD", 250, 3),  # 2.5 -> 3 (banker's rounding would give 2)
        (100, "USD", 450, 5),  # 4.5 -> 5 (banker's rounding would give 4)
        (100, "USD", 349, 3),  # 3.49 -> 3
        (30, "USD", 500, 2),  # 1.5 -> 2
        (12345, "USD", 0, 0),
        (12345, "USD", 10_000, 12345),
        (12345, "USD", 15_000, 18518),  # 18517.5 -> 18518
        (0, "USD", 290, 0),
        (999, "JPY", 350, 35),  # 34.965 yen -> 35
        (1005, "BHD", 1000, 101),  # 100.5 fils -> 101
        (10_000_000, "USD", 1, 1000),  # one basis point of $100,000.00
        (49_999, "USD", 1, 5),  # 4.9999 -> 5
        (5_000, "USD", 1, 1),  # 0.5 -> 1
        (4_999, "USD", 1, 0),  # 0.4999 -> 0
    ],
)
def test_percent_of_rounds_half_up(
    minor: int, currency: str, basis_points: int, expected: int
) -> None:
    assert percent_of(Money(minor, currency), basis_points) == Money(expected, currency)


def test_percent_of_refuses_negative_inputs() -> None:
    with pytest.raises(MoneyError, match="non-negative amounts and rates"):
        percent_of(Money(-1, "USD"), 290)
    with pytest.raises(MoneyError, match="non-negative amounts and rates"):
        percent_of(Money(100, "USD"), -1)


@given(minor=st.integers(0, 10**15), basis_points=st.integers(0, 100_000))
def test_percent_of_matches_exact_rational_rounding(minor: int, basis_points: int) -> None:
    exact = Fraction(minor * basis_points, 10_000)
    expected = int(exact + Fraction(1, 2))  # floor(x + 1/2): half up for x >= 0
    assert percent_of(Money(minor, "USD"), basis_points) == Money(expected, "USD")


# -- round trips ---------------------------------------------------------------------------


@st.composite
def parseable_money(draw: st.DrawFn) -> Money:
    currency = draw(st.sampled_from(sorted(CURRENCY_SCALES)))
    limit = 10 ** (MAX_INTEGER_DIGITS + CURRENCY_SCALES[currency]) - 1
    minor = draw(st.one_of(st.integers(0, 1000), st.integers(0, limit), st.just(limit)))
    return Money(minor, currency)


@given(parseable_money())
def test_render_then_parse_is_identity(money: Money) -> None:
    assert parse_amount(money.plain(), money.currency) == money
    assert parse_amount(money.fps(), money.currency) == money
    assert parse_money(str(money)) == money


@given(parseable_money())
def test_plain_has_exactly_the_currency_scale_and_fps_six_decimals(money: Money) -> None:
    scale = CURRENCY_SCALES[money.currency]
    plain, fps = money.plain(), money.fps()
    if scale == 0:
        assert "." not in plain
    else:
        assert len(plain.split(".")[1]) == scale
    assert len(fps.split(".")[1]) == 6
    assert int(plain.replace(".", "")) == money.minor


@given(parseable_money(), st.integers(1, 9))
def test_one_digit_beyond_the_scale_is_refused(money: Money, digit: int) -> None:
    scale = CURRENCY_SCALES[money.currency]
    text = money.plain() + ("" if scale else ".") + str(digit)
    with pytest.raises(MoneyError, match=f"more than {scale} decimal places"):
        parse_amount(text, money.currency)

"""The fee schedule: hand-computed fees, rounding half up, bounds, and the free methods."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builders import usd
from penny.domain.fees import DEFAULT_RULES, FeeRule, FeeSchedule, Method
from penny.money import Money


@pytest.mark.parametrize(
    ("method", "amount", "fee"),
    [
        (Method.card, "10", "0.59"),  # $0.30 + 2.9 % of $10.00 = $0.30 + $0.29
        (Method.card, "90", "2.91"),  # $0.30 + $2.61
        (Method.card, "0.01", "0.01"),  # never more than the amount
        (Method.bank, "10", "0.20"),  # $0.05 + 1.5 % = $0.05 + $0.15
        (Method.bank, "1000", "5.00"),  # $15.05 capped at $5.00
        (Method.balance, "10", "0.06"),  # $0.01 + 0.5 %
        (Method.prepaid, "10", "0"),
        (Method.debt, "10", "0"),
    ],
)
def test_default_schedule(method: Method, amount: str, fee: str) -> None:
    assert FeeSchedule().fee(method, usd(amount)) == usd(fee)


def test_rounding_is_half_up_to_the_cent() -> None:
    rule = FeeRule(basis_points=250)  # 2.5 %
    assert rule.fee_for(Money(10, "USD")) == Money(0, "USD")  # 0.25 cent rounds down
    assert rule.fee_for(Money(20, "USD")) == Money(1, "USD")  # 0.5 cent rounds up
    assert rule.fee_for(Money(59, "USD")) == Money(1, "USD")  # 1.475 cents rounds down
    assert rule.fee_for(Money(60, "USD")) == Money(2, "USD")  # 1.5 cents rounds up


def test_minimum_and_maximum() -> None:
    rule = FeeRule(fixed=0, basis_points=100, minimum=25, maximum=200)
    assert rule.fee_for(usd("1")) == usd("0.25")
    assert rule.fee_for(usd("100")) == usd("1")
    assert rule.fee_for(usd("1000")) == usd("2")


def test_flat_schedule_and_methods_without_a_rule() -> None:
    schedule = FeeSchedule.flat(card=50)
    assert schedule.fee(Method.card, usd("10")) == usd("0.50")
    assert schedule.fee(Method.bank, usd("10")) == usd("0")


@given(st.integers(min_value=1, max_value=10**10), st.sampled_from(list(DEFAULT_RULES)))
def test_a_fee_is_never_negative_nor_above_the_amount(minor: int, method: Method) -> None:
    fee = FeeSchedule().fee(method, Money(minor, "USD"))
    assert 0 <= fee.minor <= minor

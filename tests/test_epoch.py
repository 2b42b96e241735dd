"""penny.epoch: microseconds since the epoch ↔ datetime and epoch seconds, exactly (issue #15)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penny.epoch import (
    EPOCH,
    MICROS_PER_DAY,
    MICROS_PER_SECOND,
    from_datetime,
    from_seconds,
    second_of,
    to_datetime,
    to_seconds,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "penny"
#: Every instant a datetime can hold (years 1 to 9999), in microseconds since the epoch.
FIRST = from_datetime(datetime.min.replace(tzinfo=UTC))
LAST = from_datetime(datetime.max.replace(tzinfo=UTC))
micros = st.integers(min_value=FIRST, max_value=LAST)


@given(micros)
def test_micros_round_trip_through_datetime(us: int) -> None:
    moment = to_datetime(us)
    assert moment.tzinfo is UTC
    assert from_datetime(moment) == us


@given(st.datetimes(timezones=st.just(UTC)))
def test_datetimes_round_trip_through_micros(moment: datetime) -> None:
    assert to_datetime(from_datetime(moment)) == moment


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_an_aware_datetime_in_any_zone_is_the_same_instant(naive: datetime, minutes: int) -> None:
    zoned = naive.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    assert to_datetime(from_datetime(zoned)) == zoned.astimezone(UTC)


@given(micros)
def test_seconds_round_down_and_second_of_drops_the_fraction(us: int) -> None:
    seconds = to_seconds(us)
    assert from_seconds(seconds) <= us < from_seconds(seconds + 1)
    if from_seconds(seconds) >= FIRST:
        whole = second_of(us)
        assert whole == to_datetime(us).replace(microsecond=0)
        assert from_datetime(whole) == from_seconds(seconds)


@given(st.integers(min_value=0, max_value=2**34))
def test_second_of_agrees_with_fromtimestamp(seconds: int) -> None:
    """The conversions it replaced: ``datetime.fromtimestamp(us // 1_000_000, UTC)``."""
    us = seconds * MICROS_PER_SECOND + 999_999
    assert second_of(us) == datetime.fromtimestamp(seconds, UTC)


def test_fixed_points() -> None:
    assert to_datetime(0) == EPOCH == datetime(1970, 1, 1, tzinfo=UTC)
    assert to_datetime(MICROS_PER_DAY + 1) == datetime(1970, 1, 2, 0, 0, 0, 1, tzinfo=UTC)
    assert to_datetime(-1) == datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert to_seconds(-1) == -1
    # A float of today's microseconds is off by a fraction of one: the integers are exact.
    us = 1_765_000_000_123_457
    assert to_datetime(us).microsecond == 123_457


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(TypeError):
        from_datetime(datetime(2026, 1, 1))


def test_no_float_and_no_other_epoch_in_src() -> None:
    """The module is integer-only; nothing else in src/ builds an epoch or reads a timestamp."""
    tree = ast.parse((SRC / "epoch.py").read_text())
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.Div))
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), node.lineno
        assert not (isinstance(node, ast.Name) and node.id == "float"), node.lineno
    found = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        for needle in ("datetime(1970", "fromtimestamp(", "utcfromtimestamp("):
            if needle in text and path.name != "epoch.py":
                found.append(f"{path.relative_to(SRC).as_posix()}: {needle}")
    assert found == []

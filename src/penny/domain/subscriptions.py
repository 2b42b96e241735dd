"""Subscriptions (issue #19): what FPS's subscription actions see of a Recurring token. Pure.

A subscription **is** a Recurring sender token (docs/decisions.md, "#19: subscriptions"): its
``SubscriptionId`` is the token id, its amount the token's recurring amount, its frequency the
token's ``recurringPeriod``, its transactions the Pays made with the token, numbered 1..n in
the order they were received. Its status is ``Cancelled`` once the token is cancelled,
``Completed`` once its validity has ended, ``Active`` otherwise. Penny charges nothing on a
schedule (the caller Pays, at most once per period), so the next transaction date is the start
of the next period.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from penny.domain.model import Instrument, Token
from penny.gatekeeper import parse_duration
from penny.gatekeeper.usage import next_window_start

_PERIOD: Final = re.compile(r"\A\s*(\d+) ?([A-Za-z]+?)s?\s*\Z")
#: FPS ``TimeUnit`` values (spec §4.4) by the unit of a recurring period.
_TIME_UNITS: Final = {"day": "day", "week": "week", "month": "month", "year": "year"}


class SubscriptionStatus(enum.StrEnum):
    """FPS ``SubscriptionStatus``."""

    active = "Active"
    cancelled = "Cancelled"
    completed = "Completed"


@dataclass(frozen=True, slots=True)
class Frequency:
    """An FPS ``Duration``: ``value`` of ``unit`` (``day``, ``week``, ``month``, ``year``;
    ``hour`` for a period of hours that is not whole days — Penny's own, FPS had none)."""

    value: int
    unit: str


def frequency(period: str) -> Frequency:
    """The FPS ``Duration`` of a recurring period (``1 Month``, ``7 Days``, ``2 weeks``)."""
    match = _PERIOD.match(period)
    assert match is not None, f"a stored period reads: {period!r}"
    count, unit = int(match[1]), match[2].lower()
    if unit in _TIME_UNITS:
        return Frequency(count, _TIME_UNITS[unit])
    assert unit == "hour", unit
    return Frequency(count // 24, "day") if count % 24 == 0 else Frequency(count, "hour")


def status(token: Token, instrument: Instrument, now: int) -> SubscriptionStatus:
    """Cancelled (the token was), Completed (its validity has ended), else Active."""
    if not token.active:
        return SubscriptionStatus.cancelled
    if instrument.valid_until is not None and now >= instrument.valid_until:
        return SubscriptionStatus.completed
    return SubscriptionStatus.active


def next_payment_date(instrument: Instrument, period: str, now: int) -> int | None:
    """When the next period starts (the first one's start before it has begun); None when the
    subscription ends first."""
    if now < instrument.valid_from:
        start = instrument.valid_from
    else:
        start = next_window_start(instrument.valid_from, parse_duration(period), now)
    if instrument.valid_until is not None and start >= instrument.valid_until:
        return None
    return start

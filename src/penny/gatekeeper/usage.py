"""Usage windows of GateKeeper usage limits (``MyTokenUsageLimitN…``): pure arithmetic.

A usage limit with a period counts in **fixed windows** of that period, laid end to end from an
anchor: the limit's ``MyTokenUsageLimitNStartTime`` if the script declares one, otherwise the
moment the token was installed. Months and years are calendar steps (a window that starts on
31 January ends on 28/29 February, then 31 March: each step is counted from the anchor, so the
day is clamped but never drifts). A limit without a period has one window: the token's life.

:class:`UsageRecord` is what storage keeps per token and limit: the current window's start,
amount and count, and the previous window's totals (FPS's ``LastResetAmount``/``Count``).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

from penny.epoch import from_datetime, to_datetime
from penny.gatekeeper.checker import UsageLimit
from penny.gatekeeper.types import Duration

_at = to_datetime
_micros = from_datetime


def add_months(micros: int, months: int) -> int:
    """``micros`` moved by whole calendar months, the day clamped to the month's length."""
    at = _at(micros)
    index = at.year * 12 + (at.month - 1) + months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return _micros(at.replace(year=year, month=month + 1, day=day))


def window_start(anchor: int, period: Duration | None, now: int) -> int:
    """Start of the window that contains ``now`` (the first window when ``now`` is earlier)."""
    if period is None or now <= anchor:
        return anchor
    if period.months == 0:
        step = period.micros
        assert step > 0, "the checker refuses periods under an hour"
        return anchor + (now - anchor) // step * step
    assert period.micros == 0, "a duration literal has a single unit"
    at, start = _at(anchor), _at(now)
    elapsed = (start.year - at.year) * 12 + (start.month - at.month)
    k = max(0, elapsed // period.months)
    while k > 0 and add_months(anchor, k * period.months) > now:
        k -= 1
    return add_months(anchor, k * period.months)


def next_window_start(anchor: int, period: Duration, now: int) -> int:
    """Start of the window after the one that contains ``now`` (``now`` at or after
    ``anchor``): where the next period of a Recurring token begins (issue #19)."""
    start = window_start(anchor, period, now)
    if period.months == 0:
        return start + period.micros
    at, begun = _at(anchor), _at(start)
    steps = ((begun.year - at.year) * 12 + (begun.month - at.month)) // period.months
    return add_months(anchor, (steps + 1) * period.months)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Stored usage of one limit of one token (amounts in minor units of ``currency``)."""

    window_start: int
    amount: int
    count: int
    last_amount: int = 0
    last_count: int = 0
    currency: str = "USD"

    def current(self, start: int) -> tuple[int, int]:
        """Amount and count used in the window starting at ``start``."""
        return (self.amount, self.count) if self.window_start == start else (0, 0)

    def after_use(self, start: int, amount: int, currency: str) -> UsageRecord:
        """This record once a transaction of ``amount`` has been accepted in that window."""
        if self.window_start == start:
            return UsageRecord(
                start,
                self.amount + amount,
                self.count + 1,
                self.last_amount,
                self.last_count,
                currency,
            )
        return UsageRecord(start, amount, 1, self.amount, self.count, currency)


def anchor_of(limit: UsageLimit, installed_at: int) -> int:
    """Where the windows of ``limit`` are counted from."""
    return limit.start.micros if limit.start is not None else installed_at

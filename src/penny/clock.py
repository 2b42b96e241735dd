"""Clocks: where "now" comes from, injected into everything that needs a time.

The ledger core never reads a clock; the engine asks one of these and hands the time in as
microseconds since the Unix epoch. :class:`SystemClock` is the real one; :class:`ManualClock`
is for tests and the sandbox, where time moves only when told to.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from penny.epoch import MICROS_PER_DAY, MICROS_PER_SECOND

# The units are penny.epoch's (the conversions live there); re-exported for the clock's users.
__all__ = ["MICROS_PER_DAY", "MICROS_PER_SECOND", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Anything that can say what time it is, in microseconds since the epoch."""

    def now_us(self) -> int: ...


class SystemClock:
    """The operating system's wall clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1_000


class ManualClock:
    """A clock that stands still until :meth:`advance` or :meth:`set` moves it."""

    def __init__(self, start_us: int = 1_700_000_000 * MICROS_PER_SECOND) -> None:
        self._now = start_us
        self._lock = threading.Lock()

    def now_us(self) -> int:
        with self._lock:
            return self._now

    def advance(self, micros: int) -> int:
        if micros < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += micros
            return self._now

    def set(self, now_us: int) -> None:
        with self._lock:
            if now_us < self._now:
                raise ValueError("a clock only moves forward")
            self._now = now_us

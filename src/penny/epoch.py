"""Time as Penny holds it: integer microseconds since the Unix epoch (1970-01-01T00:00Z), and
the one place that converts it to and from :class:`~datetime.datetime` and whole epoch seconds.

Everything inside Penny (the ledger, the domain, GateKeeper, storage) keeps times as
microseconds; adapters convert at their edges with these functions. Integer arithmetic only: no
float ever holds a time, so nothing rounds (a float of today's microseconds is already off by
a fraction of one). Pure: no clock is read here (``penny.clock`` says what time it is).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

MICROS_PER_SECOND: Final = 1_000_000
MICROS_PER_DAY: Final = 86_400 * MICROS_PER_SECOND
#: The epoch, as an aware UTC datetime.
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def to_datetime(micros: int) -> datetime:
    """``micros`` as an aware UTC datetime, exactly (``OverflowError`` outside years 1–9999)."""
    return EPOCH + timedelta(microseconds=micros)


def from_datetime(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch, exactly (a naive one is a
    ``TypeError``: its zone is unknown)."""
    return (moment - EPOCH) // _MICROSECOND


def to_seconds(micros: int) -> int:
    """Whole epoch seconds of ``micros``, rounded down (the second it falls in)."""
    return micros // MICROS_PER_SECOND


def from_seconds(seconds: int) -> int:
    """Epoch seconds as microseconds."""
    return seconds * MICROS_PER_SECOND


def second_of(micros: int) -> datetime:
    """The UTC datetime of the whole second ``micros`` falls in (its fraction dropped)."""
    return to_datetime(from_seconds(to_seconds(micros)))

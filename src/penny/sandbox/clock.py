"""The sandbox clock: wall-clock time plus an offset kept in the database.

``penny sandbox advance --days 4`` moves every Penny process sharing the database four days
into the future at once: the offset lives in the ``settings`` table, and each process re-reads
it at most once per :data:`REFRESH_US` (so another process sees an advance within a second; the
process that advanced sees it at once).
"""

from __future__ import annotations

import threading
import time
from typing import Final

from penny.clock import MICROS_PER_SECOND
from penny.storage import payments_sql as sql
from penny.storage.database import Database

OFFSET_SETTING: Final = "sandbox_clock_offset_us"
REFRESH_US: Final = MICROS_PER_SECOND


class SandboxClock:
    """A clock whose offset from the system clock is shared through the database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._offset = 0
        self._read_at = -REFRESH_US - 1

    def _system_us(self) -> int:
        return time.time_ns() // 1_000

    def offset_us(self) -> int:
        return self._offset_at(self._system_us())

    def _offset_at(self, system: int) -> int:
        with self._lock:
            if system - self._read_at > REFRESH_US:
                with self.database.read() as conn:
                    stored = sql.get_setting(conn, OFFSET_SETTING)
                self._offset = int(stored) if stored else 0
                self._read_at = system
            return self._offset

    def now_us(self) -> int:
        system = self._system_us()
        return system + self._offset_at(system)

    def advance(self, micros: int) -> int:
        """Move the shared clock forward by ``micros``; returns the new time."""
        if micros < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock, self.database.write() as conn:
            stored = sql.get_setting(conn, OFFSET_SETTING)
            offset = (int(stored) if stored else 0) + micros
            sql.put_setting(conn, OFFSET_SETTING, str(offset))
            self._offset = offset
            self._read_at = self._system_us()
        return self.now_us()

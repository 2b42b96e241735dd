"""Test-only fault injection: deliberately broken builds for proving that checks catch bugs.

Nothing here runs unless ``$PENNY_FAULTS`` names a fault; ``penny serve`` calls
:func:`install_from_env` once at start, which then logs a loud warning on stderr. Faults:

* ``ack-before-commit``: one write transaction in :data:`ACK_BEFORE_COMMIT_EVERY` is rolled back
  instead of committed *after* its work ran, so the server answers "done" for changes that are
  not durable. It is what a server that acknowledges before its commit does when it dies in
  between, made deterministic so that a short test catches it without luck.

Never set ``$PENNY_FAULTS`` on a real deployment.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sqlalchemy.engine import Connection

from penny.storage.database import Database

FAULTS_ENV: Final = "PENNY_FAULTS"
ACK_BEFORE_COMMIT: Final = "ack-before-commit"
KNOWN_FAULTS: Final = frozenset({ACK_BEFORE_COMMIT})
#: ``ack-before-commit`` loses one write transaction in this many.
ACK_BEFORE_COMMIT_EVERY: Final = 5

log = logging.getLogger(__name__)


class UnknownFaultError(ValueError):
    """``$PENNY_FAULTS`` names a fault this build does not know."""


def faults_from_env(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The faults named (comma-separated) in ``$PENNY_FAULTS``; empty when unset."""
    text = (os.environ if environ is None else environ).get(FAULTS_ENV, "")
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = names - KNOWN_FAULTS
    if unknown:
        raise UnknownFaultError(f"unknown fault(s) in ${FAULTS_ENV}: {', '.join(sorted(unknown))}")
    return names


def install_from_env() -> frozenset[str]:
    """Install the faults ``$PENNY_FAULTS`` names (none when unset) and warn loudly."""
    names = faults_from_env()
    if ACK_BEFORE_COMMIT in names:
        _install_ack_before_commit()
    for name in sorted(names):
        banner = f"!!! PENNY_FAULTS: fault {name!r} INJECTED — a deliberately broken test build !!!"
        sys.stderr.write(banner + "\n")
        log.warning(banner)
    return names


def _install_ack_before_commit() -> None:
    counter = itertools.count(1)
    lock = threading.Lock()

    @contextmanager
    def write(self: Database) -> Iterator[Connection]:
        with self.write_engine.connect() as conn:
            conn.begin()
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            with lock:
                lose = next(counter) % ACK_BEFORE_COMMIT_EVERY == 0
            if lose:
                conn.rollback()
            else:
                conn.commit()

    Database.write = write  # type: ignore[method-assign]

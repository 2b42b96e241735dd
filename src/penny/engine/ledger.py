"""The ledger engine: runs batches of commands in one durable database transaction each.

:meth:`Ledger.execute` is the one way value moves. It loads what the batch refers to, lets the
pure :class:`~penny.ledger.book.Book` decide every command in order, writes the result and
commits; only then does it return the outcomes, so nobody hears "done" before the batch is on
disk. A batch that collides with another process (a unique key taken meanwhile, a deadlock, a
busy SQLite file) is rolled back and run again from fresh state; the core is pure, so a re-run is
exactly as correct as the first run. When the store stays unavailable every command of the batch
gets the transient ``storage_unavailable``, and a retry with the same key is safe.

Several threads may call :meth:`Ledger.execute`; they take turns (one writer per process).
Several processes may share one PostgreSQL database; row locks keep them exact.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from penny.clock import Clock, SystemClock
from penny.ledger.audit import AuditReport
from penny.ledger.book import Book
from penny.ledger.model import (
    Account,
    AccountSpec,
    Balance,
    Command,
    JournalRow,
    NewJournal,
    Outcome,
    VoidPending,
)
from penny.ledger.results import ResultCode
from penny.storage.database import Database
from penny.storage.ledger_sql import LedgerSql, ledger_sql_for

log = logging.getLogger(__name__)

#: How often a batch is re-run after a conflict before its commands are told to retry.
MAX_ATTEMPTS = 8

#: PostgreSQL SQLSTATEs after which re-running the transaction is the fix.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "23505"})


@dataclass(frozen=True)
class BatchStats:
    """Counters the engine keeps for metrics and benchmarks."""

    batches: int
    commands: int
    retries: int


class Ledger:
    """The engine over one store. Thread-safe; one writer at a time per process."""

    def __init__(self, database: Database, clock: Clock | None = None) -> None:
        self.database = database
        self.clock: Clock = clock or SystemClock()
        self.sql: LedgerSql = ledger_sql_for(database.dialect)
        self._write_lock = threading.Lock()
        self._batches = 0
        self._commands = 0
        self._retries = 0

    # -- writing ----------------------------------------------------------------------

    def execute(self, commands: Sequence[Command]) -> list[Outcome]:
        """Run ``commands`` as one batch in one transaction; outcomes in the same order."""
        if not commands:
            return []
        with self._write_lock:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    with self.database.write() as conn:
                        outcomes = self._run(conn, commands)
                    self._batches += 1
                    self._commands += len(commands)
                    return outcomes
                except (IntegrityError, OperationalError, DBAPIError) as exc:
                    if not _retryable(exc):
                        raise
                    self._retries += 1
                    log.info("batch conflict, attempt %d: %s", attempt + 1, exc.orig)
                    time.sleep(random.uniform(0, 0.002 * (2**attempt)))
        log.warning("batch of %d commands gave up after %d attempts", len(commands), attempt + 1)
        return [Outcome(ResultCode.storage_unavailable, None) for _ in commands]

    def _run(self, conn: Connection, commands: Sequence[Command]) -> list[Outcome]:
        sql = self.sql
        keys = sql.load_keys(conn, ((c.owner, c.key) for c in commands))
        pending_ids = [c.pending_id for c in commands if not isinstance(c, NewJournal)]
        pendings = sql.load_pendings(conn, pending_ids, lock=True)
        account_ids = {
            leg.account_id
            for c in commands
            if not isinstance(c, VoidPending) and c.legs
            for leg in c.legs
        }
        account_ids.update(leg.account_id for p in pendings.values() for leg in p.legs)
        accounts = sql.load_accounts(conn, account_ids, lock=True)
        fresh = sum(1 for c in commands if (c.owner, c.key) not in keys)
        book = Book(
            accounts=accounts,
            pendings=pendings,
            keys=keys,
            now=self.clock.now_us(),
            allocate_id=sql.id_allocator(conn, max(fresh, 1)),
        )
        outcomes = [book.apply(command) for command in commands]
        sql.write_journals(conn, book.new_journals, book.pending_changes, book.now)
        sql.write_accounts(conn, book.changed_accounts.values())
        return outcomes

    def expire_due(self, limit: int = 1000) -> int:
        """Expire open pending journals whose time has passed; returns how many."""
        with self._write_lock, self.database.write() as conn:
            now = self.clock.now_us()
            due = self.sql.due_pendings(conn, now, limit)
            if not due:
                return 0
            pendings = self.sql.load_pendings(conn, due, lock=True)
            accounts = self.sql.load_accounts(
                conn, {leg.account_id for p in pendings.values() for leg in p.legs}, lock=True
            )
            book = Book(accounts, pendings, {}, now, allocate_id=_no_ids)
            expired = sum(1 for pending_id in due if book.expire(pending_id))
            self.sql.write_journals(conn, [], book.pending_changes, now)
            self.sql.write_accounts(conn, book.changed_accounts.values())
            return expired

    def create_accounts(self, specs: Sequence[AccountSpec]) -> list[int]:
        """Open accounts; returns their ids in the order of ``specs``."""
        with self._write_lock, self.database.write() as conn:
            return self.sql.create_accounts(conn, specs, self.clock.now_us())

    def create_account(self, spec: AccountSpec) -> int:
        return self.create_accounts([spec])[0]

    def close_account(self, account_id: int) -> bool:
        """Close an account: no journal may touch it afterwards (voids still may)."""
        with self._write_lock, self.database.write() as conn:
            return self.sql.close_account(conn, account_id)

    # -- reading ----------------------------------------------------------------------

    def balance(self, account_id: int) -> Balance | None:
        with self.database.read() as conn:
            return self.sql.balance(conn, account_id)

    def account(self, account_id: int) -> Account | None:
        with self.database.read() as conn:
            return self.sql.account(conn, account_id)

    def journal(self, owner: str, key: str) -> JournalRow | None:
        with self.database.read() as conn:
            return self.sql.journal(conn, owner, key)

    def audit(self) -> AuditReport:
        with self.database.read() as conn:
            return self.sql.audit(conn)

    def count_journals(self) -> int:
        with self.database.read() as conn:
            return self.sql.count_journals(conn)

    @property
    def stats(self) -> BatchStats:
        return BatchStats(self._batches, self._commands, self._retries)


def _no_ids() -> int:
    raise AssertionError("expiring pending journals creates no journal")


def _retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _RETRYABLE_SQLSTATES
    message = str(orig).lower()
    # SQLite: another process holds the write lock past the busy timeout, or a key raced in.
    return "database is locked" in message or "database is busy" in message

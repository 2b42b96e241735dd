"""The ledger engine: runs batches of commands in one durable database transaction each.

:meth:`Ledger.execute` is the one way value moves. It loads what the batch refers to, lets the
pure :class:`~penny.ledger.book.Book` decide every command in order, writes the result and
commits; only then does it return the outcomes, so nobody hears "done" before the batch is on
disk. A batch that collides with another process (a unique key taken meanwhile, a deadlock, a
busy SQLite file) is rolled back and run again from fresh state; the core is pure, so a re-run is
exactly as correct as the first run. When the store stays unavailable every command of the batch
gets the transient ``storage_unavailable``, and a retry with the same key is safe.

A batch whose connection to PostgreSQL is lost (the primary died or is failing over; the node
reached is a standby; the server is shutting down) is not re-run and not guessed at: whether its
commit happened cannot be known from here, so its commands get ``storage_unavailable`` at once
and their retry with the same keys finds out (the first outcome if it committed, a fresh run
if it did not). The next batch takes a new connection, which finds the new primary.

Several threads may call :meth:`Ledger.execute`; they take turns (one writer per process).
Several processes may share one PostgreSQL database; row locks keep them exact.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

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

T = TypeVar("T")

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
        self._unavailable = 0

    # -- writing ----------------------------------------------------------------------

    def execute(self, commands: Sequence[Command]) -> list[Outcome]:
        """Run ``commands`` as one batch in one transaction; outcomes in the same order."""
        if not commands:
            return []
        try:
            return self.run(lambda session: session.execute(commands))
        except StorageUnavailableError:
            return [Outcome(ResultCode.storage_unavailable, None) for _ in commands]

    def run(self, work: Callable[[LedgerSession], T]) -> T:
        """Run ``work`` in one write transaction with a :class:`LedgerSession`, and commit.

        ``work`` must be a pure function of what it reads through the session's connection:
        after a conflict it is called again from the start on fresh state. Raises
        :class:`StorageUnavailableError` when conflicts persist.
        """
        with self._write_lock:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    with self.database.write() as conn:
                        session = LedgerSession(conn, self.sql, self.clock.now_us())
                        result = work(session)
                        session.flush()
                    self._batches += 1
                    self._commands += session.applied
                    return result
                except (IntegrityError, OperationalError, DBAPIError) as exc:
                    if self.database.lost_connection(exc):
                        self._unavailable += 1
                        log.warning("a batch lost its database connection: %s", exc.orig)
                        raise StorageUnavailableError(
                            "the database connection was lost; retry with the same keys"
                        ) from exc
                    if not _retryable(exc):
                        raise
                    self._retries += 1
                    log.info("batch conflict, attempt %d: %s", attempt + 1, exc.orig)
                    _back_off(attempt)
        log.warning("a batch gave up after %d attempts", MAX_ATTEMPTS)
        raise StorageUnavailableError("the database stayed busy; retry with the same keys")

    def expire_due(self, limit: int = 1000) -> int:
        """Expire open pending journals whose time has passed; returns how many."""
        return self.run(lambda session: session.expire_due(limit))

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

    @property
    def unavailable(self) -> int:
        """Batches that ended as ``storage_unavailable`` because the connection was lost."""
        return self._unavailable


def _back_off(attempt: int) -> None:
    """Sleep a random while, up to 2 ms × 2^attempt, so colliding processes spread out."""
    micros = random.randrange(2_000 * 2**attempt)
    time.sleep(timedelta(microseconds=micros).total_seconds())


def _retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _RETRYABLE_SQLSTATES
    message = str(orig).lower()
    # SQLite: another process holds the write lock past the busy timeout, or a key raced in.
    return "database is locked" in message or "database is busy" in message


class StorageUnavailableError(RuntimeError):
    """The store stayed busy or in conflict past every retry; nothing was committed."""


class LedgerSession:
    """The ledger inside one write transaction: load what commands need, apply, flush.

    Adapters that keep their own rows in the same transaction (the payments domain) use this
    directly through :meth:`Ledger.run`. :meth:`load` fetches accounts, pending journals and
    idempotency keys in bulk (and, on PostgreSQL, locks them in a fixed order); :meth:`apply`
    also fetches anything a command refers to that was not loaded yet, so loading first is an
    optimisation, never a requirement.
    """

    def __init__(self, conn: Connection, sql: LedgerSql, now: int) -> None:
        self.conn = conn
        self.sql = sql
        self.now = now
        self.applied = 0
        self._ids: list[int] = []
        self._last_id = 0
        # What was already looked up, found or not, so nothing is fetched twice.
        self._seen_keys: set[tuple[str, str]] = set()
        self._seen_pendings: set[int] = set()
        self._seen_accounts: set[int] = set()
        self.book = Book(accounts={}, pendings={}, keys={}, now=now, allocate_id=self._next_id)

    def _next_id(self) -> int:
        if not self._ids:
            self._ids = self.sql.allocate_ids(self.conn, max(64, self.applied), self._last_id)
            self._ids.reverse()
        self._last_id = self._ids.pop()
        return self._last_id

    def load(
        self,
        *,
        account_ids: Iterable[int] = (),
        pending_ids: Iterable[int] = (),
        keys: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Bring rows into the working set (those already there are left as they are)."""
        book = self.book
        # Lock order, the same in every process: keys, pending journals, accounts.
        new_keys = {k for k in keys if k not in self._seen_keys}
        if new_keys:
            self._seen_keys.update(new_keys)
            self.sql.lock_keys(self.conn, "ledger", new_keys)
            book.keys.update(self.sql.load_keys(self.conn, new_keys))
        new_pendings = {p for p in pending_ids if p not in self._seen_pendings}
        if new_pendings:
            self._seen_pendings.update(new_pendings)
            book.pendings.update(self.sql.load_pendings(self.conn, new_pendings, lock=True))
        wanted = set(account_ids)
        if new_pendings:
            wanted.update(leg.account_id for p in book.pendings.values() for leg in p.legs)
        new_accounts = wanted - self._seen_accounts
        if new_accounts:
            self._seen_accounts.update(new_accounts)
            book.accounts.update(self.sql.load_accounts(self.conn, new_accounts, lock=True))

    def lock_keys(self, namespace: str, keys: Iterable[tuple[str, str]]) -> None:
        """Serialise with other processes on these keys (adapters' own idempotency keys);
        call it before reading what the keys did, and before :meth:`load`."""
        self.sql.lock_keys(self.conn, namespace, keys)

    def assume_new_keys(self, keys: Iterable[tuple[str, str]]) -> None:
        """Skip looking up (and locking) keys the caller has just drawn at random: no command
        can have used them. The unique ``(key, owner)`` index still guards them: a collision
        fails the insert and the batch is re-run."""
        self._seen_keys.update(keys)

    def load_for(self, commands: Iterable[Command]) -> None:
        """Load everything ``commands`` refer to, in one round trip per table."""
        commands = list(commands)
        self.load(
            keys=((c.owner, c.key) for c in commands),
            pending_ids=(c.pending_id for c in commands if not isinstance(c, NewJournal)),
            account_ids=(
                leg.account_id
                for c in commands
                if not isinstance(c, VoidPending) and c.legs
                for leg in c.legs
            ),
        )

    def apply(self, command: Command) -> Outcome:
        """Apply one command to the working set (its effects are written by :meth:`flush`)."""
        self.load_for([command])
        self.applied += 1
        return self.book.apply(command)

    def execute(self, commands: Sequence[Command]) -> list[Outcome]:
        """Apply a batch: everything it refers to is loaded once, up front."""
        self.load_for(commands)
        self.applied += len(commands)
        return [self.book.apply(command) for command in commands]

    def balance(self, account_id: int) -> Balance | None:
        """The account's counters as this transaction has left them so far."""
        self.load(account_ids=[account_id])
        account = self.book.accounts.get(account_id)
        return None if account is None else account.balance

    def expire_due(self, limit: int) -> int:
        due = self.sql.due_pendings(self.conn, self.now, limit)
        self.load(pending_ids=due)
        return sum(1 for pending_id in due if self.book.expire(pending_id))

    def flush(self) -> None:
        """Write what the working set collected. Called once, before the commit."""
        book = self.book
        self.sql.write_journals(self.conn, book.new_journals, book.pending_changes, self.now)
        self.sql.write_accounts(self.conn, book.changed_accounts.values())
        book.new_journals = []
        book.pending_changes = {}
        book.changed_accounts = {}

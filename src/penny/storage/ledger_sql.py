"""SQL for the ledger: load a batch's working set, write back what the core decided, audit.

Everything here runs inside a transaction handed in by the caller. The hot statements are
written for each store (a JSON array bound to ``json_each`` on SQLite, arrays and ``unnest`` on
PostgreSQL) so that one batch costs a handful of round trips whatever its size, and an account
credited by a thousand payments in a batch is written once.

Lock order on PostgreSQL, which keeps concurrent processes free of deadlocks: pending journals
first, then accounts, each in ascending id order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, insert

from penny.ledger.audit import AuditReport, UnbalancedJournal, audit
from penny.ledger.model import (
    Account,
    AccountFlags,
    AccountSpec,
    Balance,
    JournalKind,
    JournalRow,
    KeyRecord,
    Leg,
    Pending,
    PendingState,
)
from penny.storage import driver
from penny.storage.schema import accounts as accounts_table

_ACCOUNT_COLUMNS: Final = (
    "id, currency, flags, debit_limit, credit_limit, closed, "
    "debits_posted, credits_posted, debits_pending, credits_pending, code"
)

#: How many anomalies of one kind an audit lists before it only counts.
AUDIT_LIST_LIMIT: Final = 50


#: Account flags by stored value, filled as values are met (a Flag call costs ~2 µs a row).
_FLAGS: dict[int, AccountFlags] = {}


def _flags(value: int) -> AccountFlags:
    flags = _FLAGS.get(value)
    if flags is None:
        flags = _FLAGS[value] = AccountFlags(value)
    return flags


def _account(row: Sequence[Any]) -> Account:
    return Account(
        id=row[0],
        currency=row[1],
        flags=_flags(row[2]),
        debit_limit=row[3],
        credit_limit=row[4],
        closed=bool(row[5]),
        debits_posted=row[6],
        credits_posted=row[7],
        debits_pending=row[8],
        credits_pending=row[9],
        code=row[10],
    )


@dataclass(frozen=True)
class LedgerSql:
    """The statements of one store. Use :func:`ledger_sql_for` to get the right one."""

    dialect: str

    @property
    def _pg(self) -> bool:
        return self.dialect == "postgresql"

    # -- binding many values ------------------------------------------------------------

    def _in(self, column: str) -> str:
        return self._p(driver.in_clause(self._pg, column))

    def _many(self, values: Iterable[Any]) -> Any:
        return driver.bound_list(self._pg, values)

    def _p(self, sql: str) -> str:
        """Write statements with ``?`` placeholders; psycopg wants ``%s``."""
        return driver.for_driver(self._pg, sql)

    # -- serialising keys across processes ----------------------------------------------

    def lock_keys(self, conn: Connection, namespace: str, keys: Iterable[tuple[str, str]]) -> None:
        """Serialise this transaction with any other using one of ``keys`` (PostgreSQL).

        Two processes deciding the same idempotency key at once would both read "unused" and
        one would then fail on the unique index and re-run its whole batch. A transaction-level
        advisory lock per key, taken before the keys are read and in ascending order (so two
        batches never wait on each other in a circle), makes the second wait and then read the
        first one's answer. On SQLite the write transaction is already exclusive.
        """
        if not self._pg:
            return
        hashes = sorted({_key_hash(namespace, owner, key) for owner, key in keys})
        if hashes:
            conn.exec_driver_sql(
                "SELECT count(pg_advisory_xact_lock(k)) FROM"
                " (SELECT k FROM unnest(%s::bigint[]) AS k ORDER BY k) AS sorted_keys",
                (hashes,),
            )

    # -- accounts -----------------------------------------------------------------------

    def create_accounts(
        self, conn: Connection, specs: Sequence[AccountSpec], now: int
    ) -> list[int]:
        if not specs:
            return []
        rows = [
            {
                "currency": spec.currency,
                "flags": int(spec.flags),
                "debit_limit": spec.debit_limit,
                "credit_limit": spec.credit_limit,
                "closed": False,
                "code": spec.code,
                "debits_posted": 0,
                "credits_posted": 0,
                "debits_pending": 0,
                "credits_pending": 0,
                "created_at": now,
            }
            for spec in specs
        ]
        result = conn.execute(
            insert(accounts_table).returning(accounts_table.c.id, sort_by_parameter_order=True),
            rows,
        )
        return [row[0] for row in result]

    def close_account(self, conn: Connection, account_id: int) -> bool:
        result = conn.exec_driver_sql(
            self._p("UPDATE ledger_accounts SET closed = ? WHERE id = ?"), (True, account_id)
        )
        return result.rowcount == 1

    def load_accounts(
        self, conn: Connection, ids: Iterable[int], *, lock: bool
    ) -> dict[int, Account]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        sql = f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_accounts WHERE {self._in('id')}"
        if self._pg and lock:
            sql += " ORDER BY id FOR UPDATE"
        rows = conn.exec_driver_sql(sql, (self._many(wanted),)).fetchall()
        return {row[0]: _account(row) for row in rows}

    def account(self, conn: Connection, account_id: int) -> Account | None:
        return self.load_accounts(conn, [account_id], lock=False).get(account_id)

    def balance(self, conn: Connection, account_id: int) -> Balance | None:
        row = conn.exec_driver_sql(
            self._p(
                "SELECT debits_posted, credits_posted, debits_pending, credits_pending "
                "FROM ledger_accounts WHERE id = ?"
            ),
            (account_id,),
        ).first()
        return None if row is None else Balance(row[0], row[1], row[2], row[3])

    def write_accounts(self, conn: Connection, changed: Iterable[Account]) -> None:
        rows = [
            (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending, a.id)
            for a in changed
        ]
        if not rows:
            return
        if self._pg:
            columns = list(zip(*rows, strict=True))
            conn.exec_driver_sql(
                "UPDATE ledger_accounts AS a SET debits_posted = u.dp, credits_posted = u.cp,"
                " debits_pending = u.dq, credits_pending = u.cq"
                " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],"
                " %s::bigint[]) AS u(dp, cp, dq, cq, id) WHERE a.id = u.id",
                tuple(list(column) for column in columns),
            )
        else:
            conn.exec_driver_sql(
                "UPDATE ledger_accounts SET debits_posted = ?, credits_posted = ?,"
                " debits_pending = ?, credits_pending = ? WHERE id = ?",
                rows,
            )

    # -- journals -----------------------------------------------------------------------

    def load_keys(
        self, conn: Connection, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], KeyRecord]:
        wanted = set(keys)
        if not wanted:
            return {}
        rows = conn.exec_driver_sql(
            "SELECT owner, key, id, fingerprint, result FROM ledger_journals"
            f" WHERE {self._in('key')}",
            (self._many(sorted({key for _owner, key in wanted})),),
        ).fetchall()
        found: dict[tuple[str, str], KeyRecord] = {}
        for owner, key, journal_id, print_, result in rows:
            if (owner, key) in wanted:
                found[(owner, key)] = KeyRecord(journal_id, bytes(print_), result)
        return found

    def load_pendings(
        self, conn: Connection, ids: Iterable[int], *, lock: bool
    ) -> dict[int, Pending]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        sql = (
            "SELECT id, owner, pending_state, expires_at FROM ledger_journals"
            f" WHERE {self._in('id')} AND kind = {int(JournalKind.pending)} AND result = 0"
        )
        if self._pg and lock:
            sql += " ORDER BY id FOR UPDATE"
        heads = conn.exec_driver_sql(sql, (self._many(wanted),)).fetchall()
        legs = self._legs_of(conn, [head[0] for head in heads])
        return {
            head[0]: Pending(
                head[0], head[1], legs.get(head[0], ()), PendingState(head[2]), head[3]
            )
            for head in heads
        }

    def due_pendings(self, conn: Connection, now: int, limit: int) -> list[int]:
        rows = conn.exec_driver_sql(
            self._p(
                "SELECT id FROM ledger_journals WHERE pending_state = 1"
                " AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?"
            ),
            (now, limit),
        ).fetchall()
        return [row[0] for row in rows]

    def _legs_of(self, conn: Connection, journal_ids: list[int]) -> dict[int, tuple[Leg, ...]]:
        if not journal_ids:
            return {}
        rows = conn.exec_driver_sql(
            "SELECT l.journal_id, l.account_id, l.amount, a.currency FROM ledger_legs l"
            " JOIN ledger_accounts a ON a.id = l.account_id"
            f" WHERE {self._in('l.journal_id')} ORDER BY l.journal_id, l.idx",
            (self._many(journal_ids),),
        ).fetchall()
        legs: dict[int, list[Leg]] = {}
        for journal_id, account_id, amount, currency in rows:
            legs.setdefault(journal_id, []).append(Leg(account_id, amount, currency))
        return {journal_id: tuple(items) for journal_id, items in legs.items()}

    def legs(self, conn: Connection, journal_id: int) -> tuple[Leg, ...]:
        return self._legs_of(conn, [journal_id]).get(journal_id, ())

    def allocate_ids(self, conn: Connection, count: int, above: int = 0) -> list[int]:
        """``count`` fresh journal ids for this transaction, ascending, all above ``above``
        (the last id this transaction was already given)."""
        if self._pg:
            rows = conn.exec_driver_sql(
                "SELECT nextval('ledger_journal_ids') FROM generate_series(1, %s)", (count,)
            ).fetchall()
            return [row[0] for row in rows]
        # The write transaction holds SQLite's write lock, so nobody else allocates meanwhile;
        # ids handed out earlier in this transaction may not be written yet, hence ``above``.
        top = conn.exec_driver_sql("SELECT max(id) FROM ledger_journals").scalar() or 0
        start = max(top, above) + 1
        return list(range(start, start + count))

    def write_journals(
        self,
        conn: Connection,
        journals: Sequence[JournalRow],
        pending_changes: dict[int, PendingState],
        now: int,
    ) -> None:
        if journals:
            heads = [
                (
                    j.id, j.owner, j.key, j.fingerprint, j.result, int(j.kind), j.pending_id,
                    int(j.pending_state), j.created_at, j.expires_at, j.code, j.memo,
                )
                for j in journals
            ]  # fmt: skip
            legs = [
                (j.id, idx, leg.account_id, leg.amount)
                for j in journals
                for idx, leg in enumerate(j.legs)
            ]
            self._insert_journals(conn, heads, legs)
        if pending_changes:
            changes = [(int(state), now, pid) for pid, state in sorted(pending_changes.items())]
            if self._pg:
                columns = list(zip(*changes, strict=True))
                conn.exec_driver_sql(
                    "UPDATE ledger_journals AS j SET pending_state = u.s, resolved_at = u.t"
                    " FROM unnest(%s::smallint[], %s::bigint[], %s::bigint[]) AS u(s, t, id)"
                    " WHERE j.id = u.id",
                    tuple(list(column) for column in columns),
                )
            else:
                conn.exec_driver_sql(
                    "UPDATE ledger_journals SET pending_state = ?, resolved_at = ? WHERE id = ?",
                    changes,
                )

    def _insert_journals(
        self, conn: Connection, heads: list[tuple[Any, ...]], legs: list[tuple[int, int, int, int]]
    ) -> None:
        head_sql = (
            "INSERT INTO ledger_journals (id, owner, key, fingerprint, result, kind, pending_id,"
            " pending_state, created_at, expires_at, code, memo)"
        )
        leg_sql = "INSERT INTO ledger_legs (journal_id, idx, account_id, amount)"
        if self._pg:
            head_columns = tuple(list(column) for column in zip(*heads, strict=True))
            conn.exec_driver_sql(
                head_sql + " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[],"
                " %s::bytea[], %s::smallint[], %s::smallint[], %s::bigint[], %s::smallint[],"
                " %s::bigint[], %s::bigint[], %s::integer[], %s::text[])",
                head_columns,
            )
            if legs:
                leg_columns = tuple(list(column) for column in zip(*legs, strict=True))
                conn.exec_driver_sql(
                    leg_sql + " SELECT * FROM unnest(%s::bigint[], %s::smallint[],"
                    " %s::bigint[], %s::bigint[])",
                    leg_columns,
                )
        else:
            conn.exec_driver_sql(head_sql + " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", heads)
            if legs:
                conn.exec_driver_sql(leg_sql + " VALUES (?,?,?,?)", legs)

    def journal(self, conn: Connection, owner: str, key: str) -> JournalRow | None:
        row = conn.exec_driver_sql(
            self._p(
                "SELECT id, owner, key, fingerprint, result, kind, pending_id, pending_state,"
                " created_at, expires_at, code, memo FROM ledger_journals"
                " WHERE key = ? AND owner = ?"
            ),
            (key, owner),
        ).first()
        if row is None:
            return None
        return JournalRow(
            id=row[0],
            owner=row[1],
            key=row[2],
            fingerprint=bytes(row[3]),
            result=row[4],
            kind=JournalKind(row[5]),
            pending_id=row[6],
            pending_state=PendingState(row[7]),
            created_at=row[8],
            expires_at=row[9],
            code=row[10],
            memo=row[11],
            legs=self.legs(conn, row[0]),
        )

    def count_journals(self, conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT count(*) FROM ledger_journals").scalar() or 0)

    # -- audit --------------------------------------------------------------------------

    def audit(self, conn: Connection) -> AuditReport:
        """Re-derive every counter from the legs and compare (run in one snapshot)."""
        posted = f"({int(JournalKind.posted)}, {int(JournalKind.post_pending)})"
        derived_rows = conn.exec_driver_sql(
            "SELECT l.account_id,"
            f" SUM(CASE WHEN l.amount > 0 AND j.kind IN {posted} THEN l.amount ELSE 0 END),"
            f" SUM(CASE WHEN l.amount < 0 AND j.kind IN {posted} THEN -l.amount ELSE 0 END),"
            " SUM(CASE WHEN l.amount > 0 AND j.kind = 1 AND j.pending_state = 1"
            " THEN l.amount ELSE 0 END),"
            " SUM(CASE WHEN l.amount < 0 AND j.kind = 1 AND j.pending_state = 1"
            " THEN -l.amount ELSE 0 END),"
            " COUNT(*)"
            " FROM ledger_legs l JOIN ledger_journals j ON j.id = l.journal_id"
            " WHERE j.result = 0 GROUP BY l.account_id"
        ).fetchall()
        derived = {
            row[0]: Balance(int(row[1]), int(row[2]), int(row[3]), int(row[4]))
            for row in derived_rows
        }
        unbalanced = [
            UnbalancedJournal(row[0], row[1], int(row[2]))
            for row in conn.exec_driver_sql(
                "SELECT l.journal_id, a.currency, SUM(l.amount) FROM ledger_legs l"
                " JOIN ledger_accounts a ON a.id = l.account_id"
                " GROUP BY l.journal_id, a.currency HAVING SUM(l.amount) <> 0"
                f" ORDER BY l.journal_id LIMIT {AUDIT_LIST_LIMIT}"
            )
        ]
        journals = self.count_journals(conn)
        legs = int(conn.exec_driver_sql("SELECT count(*) FROM ledger_legs").scalar() or 0)
        accounts = (
            _account(row)
            for row in conn.exec_driver_sql(
                f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_accounts ORDER BY id"
            )
        )
        return audit(
            accounts,
            derived,
            unbalanced,
            list(self._anomalies(conn)),
            journals=journals,
            legs=legs,
        )

    def _anomalies(self, conn: Connection) -> Iterator[str]:
        checks = [
            (
                "journal {} was refused but has legs",
                "SELECT DISTINCT l.journal_id FROM ledger_legs l JOIN ledger_journals j"
                " ON j.id = l.journal_id WHERE j.result <> 0",
            ),
            (
                "journal {} voids a pending journal but has legs",
                "SELECT DISTINCT l.journal_id FROM ledger_legs l JOIN ledger_journals j"
                f" ON j.id = l.journal_id WHERE j.kind = {int(JournalKind.void_pending)}",
            ),
            (
                "journal {} has fewer than two legs",
                "SELECT j.id FROM ledger_journals j WHERE j.result = 0"
                f" AND j.kind IN ({int(JournalKind.posted)}, {int(JournalKind.pending)},"
                f" {int(JournalKind.post_pending)})"
                " AND (SELECT count(*) FROM ledger_legs l WHERE l.journal_id = j.id) < 2",
            ),
            (
                "pending journal {} is not marked as its posting or voiding says",
                "SELECT p.id FROM ledger_journals x JOIN ledger_journals p ON p.id = x.pending_id"
                " WHERE x.result = 0 AND ("
                f"(x.kind = {int(JournalKind.post_pending)}"
                f" AND p.pending_state <> {int(PendingState.posted)}) OR"
                f" (x.kind = {int(JournalKind.void_pending)}"
                f" AND p.pending_state <> {int(PendingState.voided)}))",
            ),
            (
                "pending journal {} is marked posted or voided with nothing that did it",
                "SELECT p.id FROM ledger_journals p WHERE p.kind = 1 AND p.result = 0"
                f" AND p.pending_state IN ({int(PendingState.posted)},"
                f" {int(PendingState.voided)}) AND NOT EXISTS (SELECT 1 FROM ledger_journals x"
                " WHERE x.pending_id = p.id AND x.result = 0 AND x.kind IN"
                f" ({int(JournalKind.post_pending)}, {int(JournalKind.void_pending)}))",
            ),
        ]
        for message, sql in checks:
            for row in conn.exec_driver_sql(f"{sql} LIMIT {AUDIT_LIST_LIMIT}"):
                yield message.format(row[0])


def _key_hash(namespace: str, owner: str, key: str) -> int:
    """A signed 64-bit lock id for one key (collisions only serialise a little more)."""
    digest = hashlib.blake2b(
        f"{len(namespace)}:{namespace}|{len(owner)}:{owner}|{key}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def ledger_sql_for(dialect: str) -> LedgerSql:
    assert dialect in {"sqlite", "postgresql"}, dialect
    return LedgerSql(dialect)

"""Crash safety: a Penny process SIGKILLed at any moment loses nothing it acknowledged and
leaves no half-applied journal.

A worker process (``tests/ledger_worker.py``) hammers a funded set of prepaid-style accounts
through the group committer; it is killed after a random short time, the store is reopened (for
SQLite, with the WAL exactly as the killed process left it) and checked against what the worker
printed, line by line, after each ``submit`` returned. Each later run re-submits keys from the
end of the earlier ones: keys that were acknowledged, committed but never acknowledged, or lost
in the kill. ``PENNY_CRASH_TRIALS`` sets the number of kills per store (default 5) and
``PENNY_CRASH_SEED`` the seed.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger_worker import Ack, WorkerProcess, Workload
from penny.engine.ledger import Ledger
from penny.ledger.fingerprint import fingerprint
from penny.ledger.model import AccountFlags, AccountSpec, JournalKind, Leg, NewJournal
from penny.ledger.results import ResultCode
from penny.storage.database import open_database

TRIALS = int(os.environ.get("PENNY_CRASH_TRIALS", "5"))
SEED = int(os.environ.get("PENNY_CRASH_SEED", "20261124"))
OWNER = "crash"
PREFIX = "t"
FUNDING = 20_000
PREPAID = 4
MERCHANTS = 2
#: Outcomes this workload may get; anything else (a transient code, a duplicate with different
#: content for content that never changes) is a failure.
EXPECTED_CODES = frozenset({ResultCode.ok, ResultCode.insufficient_balance})


@dataclass(frozen=True)
class Accounts:
    bank: int
    prepaid: tuple[int, ...]
    merchants: tuple[int, ...]

    @property
    def bounded(self) -> tuple[int, ...]:
        return self.prepaid + self.merchants


@dataclass(frozen=True)
class StoredJournal:
    id: int
    owner: str
    key: str
    fingerprint: bytes
    result: int
    kind: int
    legs: tuple[tuple[int, int], ...]  # (account_id, amount) in leg order


def _setup(url: str) -> Accounts:
    database = open_database(url)
    try:
        ledger = Ledger(database)
        bounded = AccountSpec("USD", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        ids = ledger.create_accounts([AccountSpec("USD")] + [bounded] * (PREPAID + MERCHANTS))
        accounts = Accounts(ids[0], tuple(ids[1 : 1 + PREPAID]), tuple(ids[1 + PREPAID :]))
        funding = [
            NewJournal(
                "setup",
                f"fund-{account}",
                (Leg(accounts.bank, FUNDING, "USD"), Leg(account, -FUNDING, "USD")),
            )
            for account in accounts.prepaid
        ]
        outcomes = ledger.execute(funding)
        assert all(outcome.ok for outcome in outcomes), outcomes
        return accounts
    finally:
        database.dispose()


def _wait_for_sessions_to_end(url: str, timeout: float = 30.0) -> None:
    """On PostgreSQL, wait until the killed worker's server sessions are gone: a COMMIT it sent
    just before the kill may still be landing, and the check must see the settled store."""
    database = open_database(url, migrate=False)
    try:
        if not database.is_postgresql:
            return  # the killed process was the only writer; nothing outlives it
        deadline = time.monotonic() + timeout
        while True:
            with database.write_engine.connect() as conn:
                others = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                ).scalar()
            if others == 0:
                return
            assert time.monotonic() < deadline, f"{others} sessions outlived the killed worker"
            time.sleep(0.02)
    finally:
        database.dispose()


def _read_store(url: str, sample: list[Ack]) -> tuple[dict[str, StoredJournal], list[str]]:
    """Reopen the store after a kill and read every journal, in one snapshot; audit it; check
    the accounts' counters against the legs. Returns the journals by key and what is wrong."""
    problems: list[str] = []
    database = open_database(url)
    try:
        ledger = Ledger(database)
        report = ledger.audit()
        if not report.ok:
            problems.append(f"audit failed: {report}")
        with database.read() as conn:
            heads = conn.exec_driver_sql(
                "SELECT id, owner, key, fingerprint, result, kind FROM ledger_journals"
            ).fetchall()
            leg_rows = conn.exec_driver_sql(
                "SELECT journal_id, idx, account_id, amount FROM ledger_legs"
                " ORDER BY journal_id, idx"
            ).fetchall()
            account_rows = conn.exec_driver_sql(
                "SELECT id, flags, debits_posted, credits_posted, debits_pending,"
                " credits_pending FROM ledger_accounts"
            ).fetchall()
        # The public read path must agree with the rows, for a sample of what was acknowledged.
        for ack in sample:
            row = ledger.journal(OWNER, ack.key)
            if row is None or row.id != ack.journal_id or row.result != ack.code:
                problems.append(f"Ledger.journal({ack.key!r}) = {row}, acknowledged {ack}")
    finally:
        database.dispose()

    legs: dict[int, list[tuple[int, int]]] = {}
    for journal_id, idx, account_id, amount in leg_rows:
        legs.setdefault(journal_id, []).append((account_id, amount))
        if idx != len(legs[journal_id]) - 1:
            problems.append(f"journal {journal_id}: legs numbered {idx} out of sequence")
    journals: dict[str, StoredJournal] = {}
    for journal_id, owner, key, print_, result, kind in heads:
        journals[key] = StoredJournal(
            journal_id, owner, key, bytes(print_), result, kind, tuple(legs.pop(journal_id, ()))
        )
    if legs:
        problems.append(f"legs without a journal: {sorted(legs)[:10]}")
    if len(journals) != len(heads):
        problems.append("a key is stored more than once")

    # Counters, derived independently of the engine and of the audit's SQL.
    derived: dict[int, list[int]] = {}
    for journal in journals.values():
        if journal.result != ResultCode.ok:
            if journal.legs:
                problems.append(f"refused journal {journal.key} has legs {journal.legs}")
            continue
        if journal.kind != JournalKind.posted or len(journal.legs) != 2:
            problems.append(f"journal {journal.key}: kind {journal.kind}, legs {journal.legs}")
        if sum(amount for _account, amount in journal.legs) != 0:
            problems.append(f"journal {journal.key} does not balance: {journal.legs}")
        for account_id, amount in journal.legs:
            counters = derived.setdefault(account_id, [0, 0])
            counters[0 if amount > 0 else 1] += abs(amount)
    for account_id, flags, dp, cp, dq, cq in account_rows:
        debits, credits = derived.pop(account_id, [0, 0])
        if (dp, cp, dq, cq) != (debits, credits, 0, 0):
            problems.append(
                f"account {account_id}: stored {(dp, cp, dq, cq)}, legs say {(debits, credits)}"
            )
        if flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and cp - dp - dq < 0:
            problems.append(f"prepaid-style account {account_id} is negative: {cp - dp - dq}")
    if derived:
        problems.append(f"legs on accounts that do not exist: {sorted(derived)}")
    return journals, problems


def _check_contents(journals: Mapping[str, StoredJournal], workload: Workload) -> list[str]:
    """Every journal the workers wrote holds exactly what its key asked for, or nothing."""
    problems: list[str] = []
    for journal in journals.values():
        if journal.owner != OWNER:
            continue
        command = workload.command(journal.key)
        if journal.fingerprint != fingerprint(command):
            problems.append(f"journal {journal.key}: fingerprint is not its command's")
        if journal.result not in EXPECTED_CODES:
            problems.append(f"journal {journal.key}: stored result {journal.result}")
        elif journal.result == ResultCode.ok:
            wanted = tuple((leg.account_id, leg.amount) for leg in command.legs)
            if journal.legs != wanted:
                problems.append(f"journal {journal.key}: legs {journal.legs}, asked {wanted}")
    return problems


def _check_acks(
    acks: list[Ack],
    journals: Mapping[str, StoredJournal],
    before: Mapping[str, StoredJournal],
    acked: dict[str, Ack],
) -> list[str]:
    """What the killed worker acknowledged is stored as acknowledged; keys stored before the
    run were answered with the stored outcome, as replays."""
    problems: list[str] = []
    for ack in acks:
        if ack.code not in EXPECTED_CODES:
            problems.append(f"unexpected outcome {ack}")
            continue
        stored = journals.get(ack.key)
        if stored is None:
            problems.append(f"acknowledged {ack} but the key is not stored: LOST")
            continue
        if (stored.id, stored.result) != (ack.journal_id, ack.code):
            problems.append(f"acknowledged {ack}, stored journal {stored.id} {stored.result}")
        earlier = before.get(ack.key)
        if earlier is not None and (
            not ack.replayed or (earlier.id, earlier.result) != (ack.journal_id, ack.code)
        ):
            problems.append(f"{ack} for a key stored before this run as {earlier}")
        if earlier is None and ack.replayed:
            problems.append(f"{ack} replays a key that was not stored before this run")
        first = acked.setdefault(ack.key, ack)
        if (first.journal_id, first.code) != (ack.journal_id, ack.code):
            problems.append(f"{ack} contradicts the earlier acknowledgement {first}")
    for key, ack in acked.items():  # everything acknowledged in any earlier run is still there
        stored = journals.get(key)
        if stored is None or (stored.id, stored.result) != (ack.journal_id, ack.code):
            problems.append(f"acknowledged {ack} earlier, now stored as {stored}")
    return problems


@pytest.mark.timeout(60 + 20 * TRIALS)
def test_sigkilled_worker_loses_nothing_acknowledged(database_url: str, tmp_path: Path) -> None:
    store = database_url.split(":", 1)[0].split("+", 1)[0]
    rng = random.Random(f"{SEED}/{store}")
    accounts = _setup(database_url)
    workload = Workload(
        owner=OWNER,
        debit=accounts.bounded,
        credit=accounts.bounded,
        min_amount=1,
        max_amount=3000,
        content_seed=SEED,
    )
    acked: dict[str, Ack] = {}
    journals: dict[str, StoredJournal] = {}
    highest = -1  # the highest key index stored so far
    kills = replays = unacknowledged = 0
    started = time.monotonic()
    for trial in range(TRIALS):
        # Go back over the tail of the earlier runs: acknowledged keys, keys committed but not
        # acknowledged when the kill came, and keys the kill lost.
        start = max(0, highest + 1 - rng.randint(50, 600))
        delay = rng.uniform(0.2, 1.5)
        args = [
            "--url", database_url, "--owner", OWNER, "--prefix", PREFIX,
            "--debit", ",".join(map(str, workload.debit)),
            "--credit", ",".join(map(str, workload.credit)),
            "--min-amount", str(workload.min_amount), "--max-amount", str(workload.max_amount),
            "--content-seed", str(workload.content_seed),
            "--start", str(start), "--count", "1000000",
            "--concurrency", str(rng.choice([8, 32, 128])),
        ]  # fmt: skip
        with WorkerProcess(args, tmp_path, f"trial{trial}") as worker:
            worker.wait_ready()
            time.sleep(delay)
            worker.kill()
            context = f"{store} trial {trial} (seed {SEED}, start {start}, kill after {delay:.2f}s)"
            assert worker.process.returncode == -signal.SIGKILL, worker.describe()
            assert not worker.errors(), f"{context}: {worker.errors()[:5]}"
            acks = worker.acks()
        kills += 1
        replays += sum(ack.replayed for ack in acks)
        sample = rng.sample(list(acked.values()) + acks, min(25, len(acked) + len(acks)))
        before = journals
        _wait_for_sessions_to_end(database_url)
        journals, problems = _read_store(database_url, sample)
        problems += _check_contents(journals, workload)
        problems += _check_acks(acks, journals, before, acked)
        assert not problems, f"{context}: {len(problems)} problems:\n" + "\n".join(problems[:30])
        acked_now = {ack.key for ack in acks}
        unacknowledged += sum(
            1
            for key, journal in journals.items()
            if journal.owner == OWNER and key not in before and key not in acked_now
        )
        highest = max(
            (int(j.key.rsplit("-", 1)[1]) for j in journals.values() if j.owner == OWNER),
            default=-1,
        )
    elapsed = time.monotonic() - started
    codes = {ack.code for ack in acked.values()}
    print(
        f"\ncrash safety [{store}]: {kills} kills in {elapsed:.1f}s, {len(acked)} keys"
        f" acknowledged, {replays} replayed acks, {unacknowledged} committed but never"
        f" acknowledged before a kill, {highest + 1} keys reached",
        file=sys.stderr,
    )
    assert len(acked) > 100, "the workers acknowledged too little for the test to mean much"
    assert codes == EXPECTED_CODES, f"the workload should see both outcomes, saw {codes}"
    if TRIALS > 1:
        assert replays > 0, "later runs should have re-submitted acknowledged keys"

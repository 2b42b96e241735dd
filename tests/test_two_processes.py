"""Two Penny processes on one PostgreSQL database (how Penny scales out) stay exact.

Two ``tests/ledger_worker.py`` processes, started together, hammer one hot account (every
transfer credits it) from a few buyer accounts that may not go negative and are funded with less
than the transfers ask for, so overspending is attempted all the time. Most keys are submitted
by both processes. Afterwards: every key was applied exactly once and both processes were given
the same answer for it; no buyer is negative or spent more than it was funded; no transfer was
refused while its buyer could still pay it; the hot account holds exactly the sum of the
successful transfers; the audit is clean. A second test gives both processes the same keys with
different content: for each key exactly one wins, the other hears
``duplicate_with_different_content``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger_worker import Ack, Done, WorkerProcess, Workload, key_name
from penny.engine.ledger import Ledger
from penny.ledger.fingerprint import fingerprint
from penny.ledger.model import AccountFlags, AccountSpec, Leg, NewJournal
from penny.ledger.results import ResultCode
from penny.storage.database import open_database

POSTGRESQL_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)

OWNER = "scale"
BUYERS = 5
FUNDING = 300_000
MAX_AMOUNT = 500
#: A client re-submits a ``storage_unavailable`` answer under the same key this many times.
CLIENT_RETRIES = 10


@dataclass(frozen=True)
class Accounts:
    bank: int
    hot: int
    buyers: tuple[int, ...]


@dataclass(frozen=True)
class Row:
    id: int
    owner: str
    key: str
    fingerprint: bytes
    result: int
    legs: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Run:
    """What two workers said and what the store holds afterwards."""

    acks: tuple[dict[str, Ack], dict[str, Ack]]
    done: tuple[Done, Done]
    elapsed_s: float
    rows: dict[str, Row]
    counters: dict[int, tuple[int, int, int, int]]


def _setup(url: str) -> Accounts:
    database = open_database(url)
    try:
        ledger = Ledger(database)
        bounded = AccountSpec("USD", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        ids = ledger.create_accounts([AccountSpec("USD"), bounded] + [bounded] * BUYERS)
        accounts = Accounts(ids[0], ids[1], tuple(ids[2:]))
        outcomes = ledger.execute(
            [
                NewJournal(
                    "setup",
                    f"fund-{buyer}",
                    (Leg(accounts.bank, FUNDING, "USD"), Leg(buyer, -FUNDING, "USD")),
                )
                for buyer in accounts.buyers
            ]
        )
        assert all(outcome.ok for outcome in outcomes), outcomes
        return accounts
    finally:
        database.dispose()


def _worker_args(
    url: str, accounts: Accounts, *, start: int, count: int, content_seed: int, order_seed: int
) -> list[str]:
    return [
        "--url", url, "--owner", OWNER, "--prefix", "k",
        "--debit", ",".join(map(str, accounts.buyers)), "--credit", str(accounts.hot),
        "--min-amount", "1", "--max-amount", str(MAX_AMOUNT),
        "--content-seed", str(content_seed), "--order", "shuffle", "--order-seed", str(order_seed),
        "--start", str(start), "--count", str(count),
        "--concurrency", "64", "--retries", str(CLIENT_RETRIES), "--wait-go",
    ]  # fmt: skip


def _run_two(
    url: str, tmp_path: Path, args_a: list[str], args_b: list[str], audit: Callable[[], None]
) -> Run:
    with (
        WorkerProcess(args_a, tmp_path, "a") as worker_a,
        WorkerProcess(args_b, tmp_path, "b") as worker_b,
    ):
        workers = (worker_a, worker_b)
        for worker in workers:
            worker.wait_ready()
        started = time.monotonic()
        for worker in workers:
            worker.go()
        for worker in workers:
            code = worker.wait(timeout=45)
            assert not worker.errors(), f"{worker.errors()[:5]} {worker.describe()}"
            assert code == 0, worker.describe()
        elapsed = time.monotonic() - started
        done_a, done_b = worker_a.done(), worker_b.done()
        assert done_a is not None, worker_a.describe()
        assert done_b is not None, worker_b.describe()
        acks: list[dict[str, Ack]] = []
        for worker in workers:
            by_key: dict[str, Ack] = {}
            for ack in worker.acks():
                assert ack.key not in by_key, f"{worker.name} answered {ack.key} twice"
                by_key[ack.key] = ack
            acks.append(by_key)
    audit()
    database = open_database(url, migrate=False)
    try:
        with database.read() as conn:
            heads = conn.exec_driver_sql(
                "SELECT id, owner, key, fingerprint, result FROM ledger_journals"
            ).fetchall()
            legs: dict[int, list[tuple[int, int]]] = {}
            for journal_id, account_id, amount in conn.exec_driver_sql(
                "SELECT journal_id, account_id, amount FROM ledger_legs ORDER BY journal_id, idx"
            ):
                legs.setdefault(journal_id, []).append((account_id, amount))
            counters = {
                row[0]: (row[1], row[2], row[3], row[4])
                for row in conn.exec_driver_sql(
                    "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending"
                    " FROM ledger_accounts"
                )
            }
    finally:
        database.dispose()
    rows: dict[str, Row] = {}
    for journal_id, owner, key, print_, result in heads:
        assert key not in rows, f"key {key} is stored twice"
        rows[key] = Row(
            journal_id, owner, key, bytes(print_), result, tuple(legs.get(journal_id, ()))
        )
    return Run((acks[0], acks[1]), (done_a, done_b), elapsed, rows, counters)


def _audit(url: str) -> Callable[[], None]:
    def run_audit() -> None:
        database = open_database(url, migrate=False)
        try:
            report = Ledger(database).audit()
        finally:
            database.dispose()
        assert report.ok, report

    return run_audit


def _check_money(run: Run, accounts: Accounts, workloads: dict[str, Workload]) -> int:
    """Buyers, the hot account and the legs agree; returns how much the hot account received.

    ``workloads`` maps each stored key of the workers' owner to the workload whose content won.
    """
    spent = dict.fromkeys(accounts.buyers, 0)
    refused: dict[int, list[int]] = {buyer: [] for buyer in accounts.buyers}
    received = 0
    for key, workload in workloads.items():
        row = run.rows[key]
        command = workload.command(key)
        assert row.fingerprint == fingerprint(command), f"{key}: not the winner's content"
        buyer, amount = command.legs[0].account_id, command.legs[0].amount
        if row.result == ResultCode.ok:
            assert row.legs == ((buyer, amount), (accounts.hot, -amount)), row
            spent[buyer] += amount
            received += amount
        else:
            assert row.result == ResultCode.insufficient_balance, row
            assert row.legs == (), row
            refused[buyer].append(amount)
    for buyer in accounts.buyers:
        dp, cp, dq, cq = run.counters[buyer]
        assert (dp, cp, dq, cq) == (spent[buyer], FUNDING, 0, 0), (buyer, run.counters[buyer])
        assert spent[buyer] <= FUNDING, f"buyer {buyer} overspent: {spent[buyer]} > {FUNDING}"
        # A buyer's balance only falls, so a refusal means it could not pay then nor later.
        if refused[buyer]:
            left = FUNDING - spent[buyer]
            assert left < min(refused[buyer]), (
                f"buyer {buyer} was refused {min(refused[buyer])} but still has {left}"
            )
    assert run.counters[accounts.hot] == (0, received, 0, 0), run.counters[accounts.hot]
    assert run.counters[accounts.bank] == (FUNDING * BUYERS, 0, 0, 0)
    return received


def _report(name: str, run: Run, request: pytest.FixtureRequest, applied: int) -> None:
    acks = sum(len(by_key) for by_key in run.acks)
    per_s = acks / run.elapsed_s
    applied_per_s = applied / run.elapsed_s
    # Straight into user_properties: the record_property fixture warns under xunit2 JUnit XML.
    properties = request.node.user_properties
    properties.append(("elapsed_s", round(run.elapsed_s, 3)))
    properties.append(("submits_per_s", round(per_s)))
    properties.append(("keys_per_s", round(applied_per_s)))
    retries = [(done.client_retries, done.engine_retries) for done in run.done]
    properties.append(("client_engine_retries", retries))
    print(
        f"\n{name}: 2 processes, {acks} submits ({applied} distinct keys) in"
        f" {run.elapsed_s:.2f}s = {per_s:.0f} submits/s, {applied_per_s:.0f} keys/s;"
        f" batches {[done.batches for done in run.done]};"
        f" (client, engine) retries {retries}",
        file=sys.stderr,
    )


@POSTGRESQL_ONLY
@pytest.mark.timeout(120)
def test_two_processes_apply_every_key_exactly_once(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    accounts = _setup(database_url)
    per_worker, shared = 8000, 5000
    start_b = per_worker - shared
    args_a = _worker_args(
        database_url, accounts, start=0, count=per_worker, content_seed=7, order_seed=1
    )
    args_b = _worker_args(
        database_url, accounts, start=start_b, count=per_worker, content_seed=7, order_seed=2
    )
    run = _run_two(database_url, tmp_path, args_a, args_b, _audit(database_url))
    acks_a, acks_b = run.acks
    keys_a = {key_name("k", i) for i in range(per_worker)}
    keys_b = {key_name("k", i) for i in range(start_b, start_b + per_worker)}
    assert set(acks_a) == keys_a, "a key went unanswered"
    assert set(acks_b) == keys_b, "a key went unanswered"
    workload = Workload(OWNER, accounts.buyers, (accounts.hot,), 1, MAX_AMOUNT, 7)

    for key in keys_a | keys_b:
        answers = [by_key[key] for by_key in run.acks if key in by_key]
        row = run.rows.get(key)
        assert row is not None, f"{answers} but {key} is not stored"
        for ack in answers:
            assert ack.code in {ResultCode.ok, ResultCode.insufficient_balance}, ack
            assert (ack.journal_id, ack.code) == (row.id, row.result), (ack, row)
        fresh = [ack for ack in answers if not ack.replayed]
        assert len(fresh) == 1, f"{key} applied {len(fresh)} times: {answers}"
    worker_rows = {key for key, row in run.rows.items() if row.owner == OWNER}
    assert worker_rows == keys_a | keys_b, "journals the workers did not ask for"
    shared_keys = keys_a & keys_b
    assert len(shared_keys) == shared
    assert sum(acks_a[key].replayed for key in shared_keys) > 0
    assert sum(acks_b[key].replayed for key in shared_keys) > 0

    received = _check_money(run, accounts, dict.fromkeys(worker_rows, workload))
    oks = sum(row.result == ResultCode.ok for key, row in run.rows.items() if key in worker_rows)
    assert 0 < oks < len(worker_rows), "both success and refusal should occur"
    assert received > FUNDING * BUYERS - BUYERS * MAX_AMOUNT, "buyers should be nearly drained"
    _report("two processes, shared keys", run, request, len(worker_rows))


@POSTGRESQL_ONLY
@pytest.mark.timeout(120)
def test_same_key_different_content_has_exactly_one_winner(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    accounts = _setup(database_url)
    count = 4000
    args_a = _worker_args(
        database_url, accounts, start=0, count=count, content_seed=1, order_seed=3
    )
    args_b = _worker_args(
        database_url, accounts, start=0, count=count, content_seed=2, order_seed=4
    )
    run = _run_two(database_url, tmp_path, args_a, args_b, _audit(database_url))
    workloads = [
        Workload(OWNER, accounts.buyers, (accounts.hot,), 1, MAX_AMOUNT, seed) for seed in (1, 2)
    ]
    keys = {key_name("k", i) for i in range(count)}
    assert set(run.acks[0]) == keys, "a key went unanswered"
    assert set(run.acks[1]) == keys, "a key went unanswered"
    winners: dict[str, Workload] = {}
    wins = [0, 0]
    for key in sorted(keys):
        answers = [run.acks[0][key], run.acks[1][key]]
        row = run.rows.get(key)
        assert row is not None, f"{answers} but {key} is not stored"
        losers = [
            i
            for i, ack in enumerate(answers)
            if ack.code is ResultCode.duplicate_with_different_content
        ]
        assert len(losers) == 1, f"{key}: not exactly one loser: {answers}"
        winner = 1 - losers[0]
        wins[winner] += 1
        assert answers[losers[0]].journal_id is None, answers
        ack = answers[winner]
        assert not ack.replayed, (ack, row)
        assert (ack.journal_id, ack.code) == (row.id, row.result), (ack, row)
        winners[key] = workloads[winner]
    assert {key for key, row in run.rows.items() if row.owner == OWNER} == keys
    _check_money(run, accounts, winners)
    print(f"\nwins per process: {wins}", file=sys.stderr)
    _report("two processes, conflicting content", run, request, count)


@POSTGRESQL_ONLY
@pytest.mark.timeout(120)
def test_key_contention_between_processes_is_not_reported_as_unavailable(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two processes submitting the same keys (same content) in different orders: a key the
    other process took meanwhile is a conflict the engine re-runs away, never a reason to tell
    a client ``storage_unavailable`` while the database is healthy. No client retries here."""
    accounts = _setup(database_url)
    count = 8000
    no_retries = ["--retries", "0", "--concurrency", "256"]
    args = [
        _worker_args(database_url, accounts, start=0, count=count, content_seed=5, order_seed=seed)
        + no_retries
        for seed in (11, 12)
    ]
    run = _run_two(database_url, tmp_path, args[0], args[1], _audit(database_url))
    unavailable = [
        ack
        for by_key in run.acks
        for ack in by_key.values()
        if ack.code is ResultCode.storage_unavailable
    ]
    _report("two processes, same keys, no client retries", run, request, count)
    assert not unavailable, (
        f"{len(unavailable)} of {2 * count} submits were answered storage_unavailable"
        f" (engine re-runs per process: {[done.engine_retries for done in run.done]}),"
        f" e.g. {unavailable[:3]}"
    )

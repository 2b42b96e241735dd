"""``penny bench ledger``: the in-process engine benchmark, with its baseline run alongside.

Set-up: 10,000 buyer accounts (balances that may not go negative), 100 merchant accounts, one
fee account and one funding account, in the store under test; every buyer is funded first.

Workloads, each for a fixed time after a short warm-up, driven by many concurrent asyncio
submitters through the group committer (so every payment is its own command with its own
idempotency key and its own outcome; batching happens only inside the engine):

* **W1** — a payment from a random buyer to one of 100 merchants, with a fee leg
  (buyer −amount, merchant +amount−fee, fee account +fee).
* **W2** — the same, all to one merchant: the hot account.

**Baseline**, measured in the same run on the same database and tables: a plain loop that does
the equivalent SQL for one transfer per durable commit (three counter updates, the journal row,
three legs, COMMIT), on a raw driver connection. It runs before and after the workloads and the
faster of the two runs is the baseline (the conservative choice on a shared, noisy machine).

After the workloads the audit must be clean and the count of ok journals must equal the
acknowledged payments; the result says so.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from penny.engine.group import GroupCommitter
from penny.engine.ledger import Ledger
from penny.ledger.model import AccountFlags, AccountSpec, Leg, NewJournal
from penny.storage.database import Database, open_database

BUYERS = 10_000
MERCHANTS = 100
CURRENCY = "USD"
FUNDING_PER_BUYER = 10**10  # $100M each: never the limit in a benchmark
FEE_MINOR = 1
OWNER = "bench"

Progress = Callable[[str, float], None]


@dataclass
class Fixture:
    """The accounts a benchmark run uses."""

    buyers: list[int]
    merchants: list[int]
    fee: int
    funding: int


@dataclass
class WorkloadResult:
    name: str
    payments: int
    seconds: float
    per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    batches: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "payments": self.payments,
            "seconds": round(self.seconds, 3),
            "per_s": round(self.per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "errors": self.errors,
            "batches": self.batches,
            "mean_batch": round(self.payments / self.batches, 1) if self.batches else 0,
        }


@dataclass
class LedgerBenchResult:
    store: str
    accounts: int
    journals_before: int
    baseline_runs: list[float] = field(default_factory=list)
    workloads: dict[str, WorkloadResult] = field(default_factory=dict)
    audit_ok: bool = False
    journals_after: int = 0
    acknowledged_ok: int = 0
    balance_read_us: dict[str, float] = field(default_factory=dict)

    @property
    def baseline_per_s(self) -> float:
        # The faster of the two runs: the conservative choice (the ratios can only come out lower).
        return max(self.baseline_runs) if self.baseline_runs else 0.0

    def as_dict(self) -> dict[str, Any]:
        w1 = self.workloads["W1"].per_s
        w2 = self.workloads["W2"].per_s
        return {
            "store": self.store,
            "w1_per_s": round(w1, 1),
            "w2_per_s": round(w2, 1),
            "baseline_per_s": round(self.baseline_per_s, 1),
            "baseline_runs_per_s": [round(r, 1) for r in self.baseline_runs],
            "w1_vs_baseline": round(w1 / self.baseline_per_s, 3) if self.baseline_per_s else 0,
            "w2_vs_w1": round(w2 / w1, 3) if w1 else 0,
            "accounts": self.accounts,
            "journals_before": self.journals_before,
            "journals_after": self.journals_after,
            "acknowledged_ok": self.acknowledged_ok,
            "audit_ok": self.audit_ok,
            "workloads": {name: w.as_dict() for name, w in self.workloads.items()},
            "balance_read_us": self.balance_read_us,
        }


# -- set-up ------------------------------------------------------------------------------


def create_fixture(ledger: Ledger, progress: Progress) -> Fixture:
    """Open the benchmark's accounts and fund every buyer (in large batches)."""
    progress("creating accounts", 0.0)
    buyers = ledger.create_accounts(
        [AccountSpec(CURRENCY, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)] * BUYERS
    )
    merchants = ledger.create_accounts(
        [AccountSpec(CURRENCY, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)] * MERCHANTS
    )
    fee, funding = ledger.create_accounts([AccountSpec(CURRENCY), AccountSpec(CURRENCY)])
    progress("creating accounts", 1.0)
    run = uuid.uuid4().hex[:8]
    chunk = 1000  # buyers funded by one journal: one debit leg and a credit leg per buyer
    for start in range(0, len(buyers), chunk):
        group = buyers[start : start + chunk]
        legs = [Leg(funding, FUNDING_PER_BUYER * len(group), CURRENCY)]
        legs += [Leg(buyer, -FUNDING_PER_BUYER, CURRENCY) for buyer in group]
        (outcome,) = ledger.execute([NewJournal(OWNER, f"fund-{run}-{start}", tuple(legs))])
        assert outcome.ok, "funding the benchmark's buyers failed"
        progress("funding buyers", (start + chunk) / len(buyers))
    return Fixture(buyers, merchants, fee, funding)


# -- workloads ---------------------------------------------------------------------------


def _payment(fixture: Fixture, rng: random.Random, merchant: int, key: str) -> NewJournal:
    buyer = fixture.buyers[rng.randrange(len(fixture.buyers))]
    amount = rng.randint(2, 500)
    return NewJournal(
        OWNER,
        key,
        (
            Leg(buyer, amount, CURRENCY),
            Leg(merchant, -(amount - FEE_MINOR), CURRENCY),
            Leg(fixture.fee, -FEE_MINOR, CURRENCY),
        ),
    )


async def _drive(
    ledger: Ledger,
    fixture: Fixture,
    *,
    name: str,
    hot: bool,
    seconds: float,
    warmup: float,
    concurrency: int,
    progress: Progress,
) -> tuple[_Run, int]:
    rng = random.Random(f"{name}-{seconds}-{time.monotonic_ns()}")
    run = uuid.uuid4().hex[:10]
    counter = iter(range(1 << 62))
    latencies: list[int] = []
    errors = 0
    ok = 0
    measuring = False
    stop = False

    async with GroupCommitter(ledger) as committer:

        async def submitter() -> None:
            nonlocal errors, ok
            while not stop:
                merchant = (
                    fixture.merchants[0]
                    if hot
                    else fixture.merchants[rng.randrange(len(fixture.merchants))]
                )
                command = _payment(fixture, rng, merchant, f"{name}-{run}-{next(counter)}")
                started = time.perf_counter_ns()
                outcome = await committer.submit(command)
                if outcome.ok:
                    ok += 1
                else:
                    errors += 1
                if measuring:
                    latencies.append(time.perf_counter_ns() - started)

        tasks = [asyncio.create_task(submitter()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        batches_before = ledger.stats.batches
        count_before = len(latencies)
        began = time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds:
            progress(name, min(elapsed / seconds, 1.0))
            await asyncio.sleep(min(0.25, seconds / 20))
        measured = len(latencies) - count_before
        elapsed = time.perf_counter() - began
        batches = ledger.stats.batches - batches_before
        stop = True
        await asyncio.gather(*tasks)
    progress(name, 1.0)
    window = latencies[count_before : count_before + measured]
    return _Run(measured, elapsed, window, errors, batches), ok


@dataclass
class _Run:
    """One measured stretch of a workload."""

    payments: int
    seconds: float
    latencies: list[int]
    errors: int
    batches: int


def _combine(name: str, runs: list[_Run]) -> WorkloadResult:
    """One result from several stretches of the same workload (an ABBA schedule)."""
    payments = sum(r.payments for r in runs)
    seconds = sum(r.seconds for r in runs)
    window = sorted(x for r in runs for x in r.latencies)
    return WorkloadResult(
        name=name,
        payments=payments,
        seconds=seconds,
        per_s=payments / seconds,
        p50_ms=_quantile(window, 50) / 1e6,
        p99_ms=_quantile(window, 99) / 1e6,
        errors=sum(r.errors for r in runs),
        batches=sum(r.batches for r in runs),
    )


def _quantile(sorted_values: list[int], percent: int) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, (len(sorted_values) * percent) // 100)
    return float(sorted_values[index])


# -- baseline ----------------------------------------------------------------------------


def baseline(database: Database, fixture: Fixture, seconds: float, progress: Progress) -> float:
    """One transfer per durable commit, plain SQL on a raw driver connection; transfers/s."""
    rng = random.Random(f"baseline-{time.monotonic_ns()}")
    run = uuid.uuid4().hex[:10]
    raw = database.write_engine.raw_connection()
    try:
        conn: Any = raw.driver_connection
        pg = database.is_postgresql
        ph = "%s" if pg else "?"
        begin = "BEGIN" if pg else "BEGIN IMMEDIATE"
        if pg:
            conn.autocommit = True
        cur = conn.cursor()
        debit = f"UPDATE ledger_accounts SET debits_posted = debits_posted + {ph} WHERE id = {ph}"
        credit = (
            f"UPDATE ledger_accounts SET credits_posted = credits_posted + {ph} WHERE id = {ph}"
        )
        next_id = "nextval('ledger_journal_ids')" if pg else "NULL"
        journal = (
            "INSERT INTO ledger_journals (id, owner, key, fingerprint, result, kind,"
            " pending_state, created_at, code, memo)"
            f" VALUES ({next_id}, {ph}, {ph}, {ph}, 0, 0, 0, {ph}, 0, '')"
            + (" RETURNING id" if pg else "")
        )
        leg = (
            "INSERT INTO ledger_legs (journal_id, idx, account_id, amount)"
            f" VALUES ({ph}, {ph}, {ph}, {ph})"
        )
        done = 0
        began = time.perf_counter()
        deadline = began + seconds
        fingerprint = bytes(16)
        while (now := time.perf_counter()) < deadline:
            buyer = fixture.buyers[rng.randrange(len(fixture.buyers))]
            merchant = fixture.merchants[rng.randrange(len(fixture.merchants))]
            amount = rng.randint(2, 500)
            cur.execute(begin)
            cur.execute(debit, (amount, buyer))
            cur.execute(credit, (amount - FEE_MINOR, merchant))
            cur.execute(credit, (FEE_MINOR, fixture.fee))
            cur.execute(
                journal, ("bench-baseline", f"{run}-{done}", fingerprint, time.time_ns() // 1000)
            )
            journal_id = cur.fetchone()[0] if pg else cur.lastrowid
            cur.execute(leg, (journal_id, 0, buyer, amount))
            cur.execute(leg, (journal_id, 1, merchant, -(amount - FEE_MINOR)))
            cur.execute(leg, (journal_id, 2, fixture.fee, -FEE_MINOR))
            cur.execute("COMMIT")
            done += 1
            if done % 256 == 0:
                progress("baseline", min((now - began) / seconds, 1.0))
        elapsed = time.perf_counter() - began
        cur.close()
    finally:
        raw.close()
    progress("baseline", 1.0)
    return done / elapsed


# -- balance reads -----------------------------------------------------------------------


def balance_read_latency(ledger: Ledger, fixture: Fixture, reads: int = 2000) -> dict[str, float]:
    rng = random.Random(7)
    samples: list[int] = []
    for _ in range(reads):
        account = fixture.buyers[rng.randrange(len(fixture.buyers))]
        started = time.perf_counter_ns()
        ledger.balance(account)
        samples.append(time.perf_counter_ns() - started)
    samples.sort()
    return {
        "p50": round(_quantile(samples, 50) / 1e3, 1),
        "p99": round(_quantile(samples, 99) / 1e3, 1),
    }


# -- the whole run -----------------------------------------------------------------------


@contextmanager
def bench_database(url: str | None, store: str) -> Iterator[Database]:
    """The store to measure: ``url`` if given, else a fresh one of kind ``store``."""
    if url is not None:
        with open_database(url) as database:
            yield database
        return
    if store == "sqlite":
        with (
            tempfile.TemporaryDirectory(prefix="penny-bench-") as tmp,
            open_database("sqlite:///" + os.path.join(tmp, "bench.db")) as database,
        ):
            yield database
        return
    from penny.devtools.pgcluster import PgCluster

    with (
        PgCluster.start() as cluster,
        open_database(cluster.create_database("penny_bench")) as database,
    ):
        yield database


def run_ledger_bench(
    database: Database,
    *,
    seconds: float,
    concurrency: int = 512,
    warmup: float = 1.0,
    progress: Progress | None = None,
) -> LedgerBenchResult:
    report: Progress = progress or (lambda _label, _fraction: None)
    ledger = Ledger(database)
    journals_before = ledger.count_journals()
    fixture = create_fixture(ledger, report)
    result = LedgerBenchResult(
        store=database.dialect,
        accounts=len(fixture.buyers) + len(fixture.merchants) + 2,
        journals_before=journals_before,
    )
    ok_before = _ok_count(ledger)
    result.baseline_runs.append(baseline(database, fixture, seconds, report))
    baseline_ok = _ok_count(ledger) - ok_before
    acknowledged = 0
    # W1, W2, W2, W1: each workload runs half its time early and half late, so the journal's
    # growth and a shared machine's drift weigh on both alike.
    runs: dict[str, list[_Run]] = {"W1": [], "W2": []}
    for name in ("W1", "W2", "W2", "W1"):
        run, ok = asyncio.run(
            _drive(
                ledger,
                fixture,
                name=name,
                hot=name == "W2",
                seconds=seconds / 2,
                warmup=warmup,
                concurrency=concurrency,
                progress=report,
            )
        )
        runs[name].append(run)
        acknowledged += ok
    for name, parts in runs.items():
        result.workloads[name] = _combine(name, parts)
    before_second = _ok_count(ledger)
    result.baseline_runs.append(baseline(database, fixture, seconds, report))
    baseline_ok += _ok_count(ledger) - before_second
    report("auditing", 0.0)
    result.balance_read_us = balance_read_latency(ledger, fixture)
    audit = ledger.audit()
    result.journals_after = ledger.count_journals()
    # Every acknowledged payment is one ok journal; the baseline adds its own, counted apart.
    result.acknowledged_ok = acknowledged
    result.audit_ok = audit.ok and (_ok_count(ledger) - ok_before == acknowledged + baseline_ok)
    report("auditing", 1.0)
    return result


def _ok_count(ledger: Ledger) -> int:
    with ledger.database.read() as conn:
        return int(
            conn.exec_driver_sql("SELECT count(*) FROM ledger_journals WHERE result = 0").scalar()
            or 0
        )


# -- balance reads as the journal grows --------------------------------------------------


def fill_journals(
    ledger: Ledger, fixture: Fixture, target: int, progress: Progress, chunk: int = 5000
) -> int:
    """Add payments in large batches until the store holds ``target`` journals."""
    rng = random.Random(11)
    run = uuid.uuid4().hex[:8]
    count = ledger.count_journals()
    start = count
    while count < target:
        size = min(chunk, target - count)
        merchants = fixture.merchants
        commands = [
            _payment(
                fixture, rng, merchants[rng.randrange(len(merchants))], f"fill-{run}-{count + i}"
            )
            for i in range(size)
        ]
        outcomes = ledger.execute(commands)
        assert all(o.ok for o in outcomes), "filling the journal failed"
        count += size
        progress(f"fill to {target:,}", (count - start) / max(1, target - start))
    return count


def run_balance_bench(
    database: Database, *, sizes: list[int], reads: int = 5000, progress: Progress | None = None
) -> dict[str, Any]:
    """Balance-read latency (µs, p50/p99) at each journal count in ``sizes``, ascending."""
    report: Progress = progress or (lambda _label, _fraction: None)
    ledger = Ledger(database)
    fixture = create_fixture(ledger, report)
    points = []
    for size in sorted(sizes):
        journals = fill_journals(ledger, fixture, size, report)
        latency = balance_read_latency(ledger, fixture, reads)
        points.append({"journals": journals, "p50_us": latency["p50"], "p99_us": latency["p99"]})
    first, last = points[0], points[-1]
    return {
        "store": database.dialect,
        "points": points,
        "p50_ratio_last_vs_first": round(last["p50_us"] / first["p50_us"], 3),
        "p99_ratio_last_vs_first": round(last["p99_us"] / first["p99_us"], 3),
        "audit_ok": ledger.audit().ok,
    }

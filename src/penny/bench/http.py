"""``penny bench http``: Penny end to end over signed HTTP, against same-run baselines.

For each store (SQLite file, or a database in a throwaway PostgreSQL cluster):

1. seed (:mod:`penny.bench.seed`): 100 merchants with API keys, 10,000 buyers each with a
   funded prepaid instrument for their merchant, one for the hot merchant and a postpaid one;
2. start ``penny serve`` (the real command, ``--workers N``) on 127.0.0.1 in its own process;
3. for each workload (W1, W2, W4, W5, W6, and W7 — W1 through the JSON API;
   :mod:`penny.bench.loadgen`), start separate load-generator processes sending signed FPS
   requests (W7: JSON with a bearer secret) over keep-alive connections,
   closed-loop, for a warm-up then a fixed measured time; afterwards the ledger audit must be
   clean and the successful money movements the clients saw must equal what the store holds
   (ok journals, and successful Pay rows);
4. P6: W1 again, open-loop at half the W1 throughput, for its Pay p99;
5. history (P5 and memory): GetPrepaidBalance p99 (open-loop, light load) now, then the ledger
   is filled (in process, large batches of Pay through the service) to 10⁵ and to 10⁶
   transactions; at each point a short W1 runs and the server's RSS is read, and at the end
   the balance p99 again.

Baselines, same run, same store: on SQLite the raw one-transfer-per-durable-commit loop of
``penny bench ledger`` (before and after the workloads, the faster counts); on PostgreSQL
pgbench TPC-B (best of 4/16/64 clients) and the django-hordak peer (:mod:`penny.bench.peers`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, text

from penny.bench.ledger import Fixture, baseline
from penny.bench.seed import Seed, seed
from penny.bench.stats import quantile_ms
from penny.engine.ledger import Ledger
from penny.security import SERVER_KEY_ENV, ServerKey
from penny.storage.database import Database, open_database

Progress = Callable[[str, float], None]

WORKLOADS = ("W1", "W2", "W4", "W5", "W6", "W7")
#: GetPrepaidBalance requests/s of the P5 probe: light, so that it measures the read, not a
#: queue (500/s saturated the PostgreSQL server on a loaded machine).
BALANCE_PROBE_RATE = 100.0
#: Balance probes per P5 point (the least disturbed one counts, see :func:`_probe`).
BALANCE_PROBE_REPEATS = 3
TARGETS = {
    "P1": "W1 on SQLite ≥ 1.0× the raw one-transfer-per-commit SQLite loop",
    "P2": "W1 on PostgreSQL ≥ 1.0× pgbench TPC-B peak tps",
    "P3": "W2 ≥ 0.9× W1 on both stores",
    "P4": "W1 on PostgreSQL ≥ 10× django-hordak transfers/s",
    "P5": "GetPrepaidBalance p99 at 10⁶ transactions ≤ 1.2× its p99 at the start",
    "P6": "Pay p99 ≤ 25 ms at 50 % of peak throughput",
    "memory": "server RSS from 10⁵ to 10⁶ transactions ≤ +10 %",
}


@dataclass
class Options:
    stores: tuple[str, ...] = ("sqlite", "postgresql")
    workloads: tuple[str, ...] = WORKLOADS
    buyers: int = 10_000
    merchants: int = 100
    seconds: float = 10.0
    warmup: float = 2.0
    connections: int = 64
    processes: int = 2
    workers: int = 1
    history: tuple[int, ...] = (100_000, 1_000_000)
    peer: str = "hordak"
    peer_processes: int = 4
    baseline_seconds: float = 10.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def rss_kib(self) -> int:
        """Resident memory of the server and its worker processes (KiB)."""
        return sum(_rss(pid) for pid in _tree(self.process.pid))

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server and its worker processes so far."""
        return sum(_cpu_seconds(pid) for pid in _tree(self.process.pid))

    def batches(self) -> tuple[float, float] | None:
        """(commands, batches) committed so far, from ``/metrics`` (one worker's with several)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        found: dict[str, float] = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in ("penny_ledger_batch_commands_sum", "penny_ledger_batch_commands_count"):
                found[name] = float(value)
        if len(found) < 2:
            return None
        return found["penny_ledger_batch_commands_sum"], found["penny_ledger_batch_commands_count"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


#: How long load generators may take to start (import, read the seed) before the run fails.
READY_TIMEOUT = 120.0
#: Seconds between the last load generator saying it is ready and the common start.
START_LEAD = 0.2


def _start_when_ready(
    children: list[subprocess.Popen[bytes]], tmp: Path, start_file: Path
) -> float:
    """Wait until every load generator is ready (each writes ``ready-<index>``), then write
    the common start time to ``start_file``: a slow start on a busy machine delays the run
    instead of eating its measured window."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not all((tmp / f"ready-{index}").exists() for index in range(len(children))):
        if any(child.poll() is not None for child in children) or time.monotonic() > deadline:
            break  # a generator died or hangs: merging the results will say so
        time.sleep(0.01)
    start_at = time.time() + START_LEAD
    written = start_file.with_suffix(".tmp")
    written.write_text(repr(start_at))
    written.replace(start_file)  # atomic: a generator never reads half a number
    return start_at


def _per_batch(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    """Mean commands per batch between two :meth:`Server.batches` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 1)


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found.extend(_tree(int(child)))
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(url: str, workers: int, key_hex: str, log: Path) -> Server:
    """``penny serve`` on 127.0.0.1 at a free port, once it answers /healthz."""
    port = _free_port()
    env = dict(os.environ)
    env[SERVER_KEY_ENV] = key_hex
    command = [sys.executable, "-c", "from penny.cli.main import main; main()", "serve"]
    command += ["--database", url, "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
        )
    server = Server(process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"penny serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"penny serve did not answer within 60 s: {log.read_text()[-2000:]}")


# -- one workload --------------------------------------------------------------------------


@dataclass
class LoadResult:
    name: str
    seconds: float
    per_s: float
    ops: dict[str, dict[str, float]]
    errors: int
    error_samples: list[str]
    moved: dict[str, int]
    requests: int
    #: CPU seconds the load generators spent, warm-up included (``requests`` is too).
    client_cpu_s: float = 0.0
    #: CPU seconds the server (all its threads and processes) spent meanwhile.
    server_cpu_s: float = 0.0
    #: Ledger commands per committed group commit meanwhile (one worker's, from /metrics).
    commands_per_batch: float | None = None

    def as_dict(self) -> dict[str, Any]:
        per_request = 1e6 / max(1, self.requests)
        return {
            "per_s": round(self.per_s, 1),
            "seconds": self.seconds,
            "ops": self.ops,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "moved": self.moved,
            "requests": self.requests,
            "client_cpu_us_per_request": round(self.client_cpu_s * per_request),
            "server_cpu_us_per_request": round(self.server_cpu_s * per_request),
            "commands_per_batch": self.commands_per_batch,
        }


def run_load(
    workload: str,
    seed_path: Path,
    port: int,
    *,
    processes: int,
    connections: int,
    warmup: float,
    duration: float,
    progress: Progress,
    label: str,
    rate: float | None = None,
) -> LoadResult:
    """Drive the server with ``processes`` load-generator processes; merge what they saw."""
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="penny-load-") as tmp:
        start_file = Path(tmp) / "start"
        children = []
        outputs = []
        for index in range(processes):
            config = {
                "host": "127.0.0.1",
                "port": port,
                "workload": workload,
                "seed_path": str(seed_path),
                "index": index,
                "processes": processes,
                "connections": max(1, connections // processes),
                "start_file": str(start_file),
                "ready_file": str(Path(tmp) / f"ready-{index}"),
                "warmup": warmup,
                "duration": duration,
                "run_id": run_id,
                "rate": rate,
            }
            path = Path(tmp) / f"config-{index}.json"
            path.write_text(json.dumps(config))
            output = Path(tmp) / f"result-{index}.json"
            outputs.append(output)
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "penny.bench.loadgen", str(path), str(output)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        start_at = _start_when_ready(children, Path(tmp), start_file)
        total = warmup + duration
        while any(child.poll() is None for child in children):
            elapsed = time.time() - start_at
            progress(label, min(1.0, max(0.0, elapsed / total)))
            time.sleep(0.2)
        progress(label, 1.0)
        merged = _merge_loadgens(children, outputs)
    return LoadResult(
        workload,
        duration,
        sum(merged.ok.values()) / duration,
        _op_stats(merged.latencies, duration),
        merged.errors,
        merged.samples[:5],
        merged.moved,
        merged.requests,
        client_cpu_s=merged.client_cpu,
    )


@dataclass
class _Merged:
    """What all the load generators of one workload saw, added up."""

    latencies: dict[str, list[int]] = field(default_factory=dict)
    ok: dict[str, int] = field(default_factory=dict)
    moved: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    requests: int = 0
    client_cpu: float = 0.0
    samples: list[str] = field(default_factory=list)


def _merge_loadgens(children: list[subprocess.Popen[bytes]], outputs: list[Path]) -> _Merged:
    """Wait for each load generator and add up the results it wrote (one failing is an error)."""
    merged = _Merged()
    for child, output in zip(children, outputs, strict=True):
        _out, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"a load generator failed: {err.decode()[-3000:]}")
        data = json.loads(output.read_text())
        for op, values in data["latencies"].items():
            merged.latencies.setdefault(op, []).extend(values)
        for op, count in data["ok"].items():
            merged.ok[op] = merged.ok.get(op, 0) + count
        for op, count in data["moved"].items():
            merged.moved[op] = merged.moved.get(op, 0) + count
        merged.errors += data["errors"]
        merged.requests += data["requests"]
        merged.client_cpu += data["cpu_s"]
        merged.samples.extend(data["error_samples"])
    return merged


def _op_stats(latencies: dict[str, list[int]], duration: float) -> dict[str, dict[str, float]]:
    """Count, rate and latency quantiles per operation and for all of them (sorts the lists)."""
    ops: dict[str, dict[str, float]] = {}
    for op, values in latencies.items():
        values.sort()
        ops[op] = _latency_stats(values, duration)
    all_values = sorted(v for values in latencies.values() for v in values)
    ops["all"] = _latency_stats(all_values, duration)
    return ops


def _latency_stats(values: list[int], duration: float) -> dict[str, float]:
    """Count, rate over ``duration`` and quantiles of sorted latencies."""
    return {
        "count": len(values),
        "per_s": round(len(values) / duration, 1),
        "p50_ms": quantile_ms(values, 50),
        "p95_ms": quantile_ms(values, 95),
        "p99_ms": quantile_ms(values, 99),
    }


# -- correctness ---------------------------------------------------------------------------


def counts(database: Database) -> dict[str, int]:
    with database.read() as conn:
        journals = conn.execute(
            text("SELECT count(*) FROM ledger_journals WHERE result = 0")
        ).scalar()
        pays = conn.execute(
            text("SELECT count(*) FROM transactions WHERE operation = 'Pay' AND status = 'Success'")
        ).scalar()
        settles = conn.execute(
            text(
                "SELECT count(*) FROM transactions"
                " WHERE operation = 'SettleDebt' AND status = 'Success'"
            )
        ).scalar()
    return {"journals": int(journals or 0), "pays": int(pays or 0), "settles": int(settles or 0)}


def check(database: Database, before: dict[str, int], moved: dict[str, int]) -> dict[str, Any]:
    """After a workload: a clean audit, and the store holds exactly what clients were told."""
    after = counts(database)
    report = Ledger(database).audit()
    pays, settles = moved.get("pay", 0), moved.get("settle", 0)
    stored_pays = after["pays"] - before["pays"]
    stored_settles = after["settles"] - before["settles"]
    stored_journals = after["journals"] - before["journals"]
    return {
        "audit_clean": report.ok,
        "successful_pays": pays,
        "ledger_pays": stored_pays,
        "successful_settles": settles,
        "ledger_settles": stored_settles,
        "ledger_journals": stored_journals,
        "ok": report.ok
        and stored_pays == pays
        and stored_settles == settles
        and stored_journals == pays + settles,
    }


# -- history -------------------------------------------------------------------------------


FILL_CHUNK = 100_000
FILL_OWNER = "bench-fill"


def fill(database: Database, fixture: Fixture, target: int, progress: Progress) -> int:
    """Add posted journals until the store holds ``target`` journals; returns the count.

    Bulk SQL, ``FILL_CHUNK`` journals per transaction: each moves 1¢ from the funding account
    to the fee account (two legs), and the two accounts' counters are raised by the chunk's
    total, so the audit stays clean. What grows is what a ledger read or write touches: the
    journal table and its ``(key, owner)`` index, the legs and their account index. (Filling
    through the service instead costs ~0.3 ms per payment: 10⁶ would take most of the 15
    minutes the whole run may take.)
    """
    have = counts(database)["journals"]
    start = have
    run = uuid.uuid4().hex[:8]
    now = time.time_ns() // 1000
    source, sink = fixture.funding, fixture.fee
    while have < target:
        size = min(FILL_CHUNK, target - have)
        with database.write() as conn:
            if database.is_postgresql:
                _fill_chunk_postgresql(conn, size, f"{run}-{have}", now, source, sink)
            else:
                _fill_chunk_sqlite(conn, size, f"{run}-{have}", now, source, sink)
            conn.execute(
                text("UPDATE ledger_accounts SET debits_posted = debits_posted + :n WHERE id = :a"),
                {"n": size, "a": source},
            )
            conn.execute(
                text(
                    "UPDATE ledger_accounts SET credits_posted = credits_posted + :n WHERE id = :b"
                ),
                {"n": size, "b": sink},
            )
        have += size
        progress(f"fill to {target:,}", (have - start) / max(1, target - start))
    return have


def _fill_chunk_postgresql(
    conn: Connection, size: int, run: str, now: int, source: int, sink: int
) -> None:
    """Insert ``size`` posted journals keyed ``run-1…`` and their legs, in one statement."""
    conn.execute(
        text(
            "WITH s AS (SELECT nextval('ledger_journal_ids') AS id, g"
            " FROM generate_series(1, :n) AS g),"
            " j AS (INSERT INTO ledger_journals (id, owner, key, fingerprint, result,"
            " kind, pending_state, created_at, code, memo)"
            " SELECT id, :owner, :run || '-' || g, decode(repeat('00', 16), 'hex'),"
            " 0, 0, 0, :now, 0, '' FROM s RETURNING id)"
            " INSERT INTO ledger_legs (journal_id, idx, account_id, amount)"
            " SELECT id, 0, :a, 1 FROM j UNION ALL SELECT id, 1, :b, -1 FROM j"
        ),
        {
            "n": size,
            "owner": FILL_OWNER,
            "run": run,
            "now": now,
            "a": source,
            "b": sink,
        },
    )


def _fill_chunk_sqlite(
    conn: Connection, size: int, run: str, now: int, source: int, sink: int
) -> None:
    """Insert ``size`` posted journals keyed ``run-1…`` after the highest id, then their legs."""
    base = int(conn.execute(text("SELECT max(id) FROM ledger_journals")).scalar() or 0)
    conn.execute(
        text(
            "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g"
            " WHERE x < :n)"
            " INSERT INTO ledger_journals (id, owner, key, fingerprint, result, kind,"
            " pending_state, created_at, code, memo)"
            " SELECT :base + x, :owner, :run || '-' || x, zeroblob(16), 0, 0, 0,"
            " :now, 0, '' FROM g"
        ),
        {
            "n": size,
            "base": base,
            "owner": FILL_OWNER,
            "run": run,
            "now": now,
        },
    )
    conn.execute(
        text(
            "INSERT INTO ledger_legs (journal_id, idx, account_id, amount)"
            " SELECT id, 0, :a, 1 FROM ledger_journals WHERE id > :base"
            " UNION ALL SELECT id, 1, :b, -1 FROM ledger_journals WHERE id > :base"
        ),
        {"base": base, "a": source, "b": sink},
    )


# -- the whole run -------------------------------------------------------------------------


@dataclass
class StoreRun:
    store: str
    seed_seconds: float = 0.0
    journals_after_seed: int = 0
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    p6: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _store(store: str, tmp: Path) -> Iterator[tuple[Database, Any]]:
    if store == "sqlite":
        with open_database("sqlite:///" + str(tmp / "bench.db")) as database:
            yield database, None
        return
    if store == "patroni":  # etcd + three Patroni nodes, synchronous replication (#18)
        from penny.devtools.patroni import PatroniCluster

        with (
            PatroniCluster.start() as patroni,
            open_database(patroni.create_database("penny_bench")) as database,
        ):
            yield database, patroni
        return
    from penny.devtools.pgcluster import PgCluster

    with (
        PgCluster.start() as cluster,
        open_database(cluster.create_database("penny_bench")) as database,
    ):
        yield database, cluster


def _fixture(database: Database, the_seed: Seed) -> Fixture:
    """The baseline loop's accounts: the buyers' prepaid accounts, the merchants' payables."""
    with database.read() as conn:
        prepaid = [b.prepaid_instrument for b in the_seed.buyers]
        rows = conn.execute(
            text("SELECT id, ledger_account_id FROM instruments"),
        ).all()
        by_id = {row[0]: int(row[1]) for row in rows}
        merchants = [m.party_id for m in the_seed.merchants]
        payable: dict[str, int] = {
            str(row[0]): int(row[1] or 0)
            for row in conn.execute(text("SELECT id, payable_account_id FROM parties")).all()
        }
        system: dict[str, int] = {
            str(row[0]): int(row[1])
            for row in conn.execute(
                text("SELECT name, ledger_account_id FROM system_accounts WHERE currency = 'USD'")
            ).all()
        }
    return Fixture(
        buyers=[by_id[i] for i in prepaid],
        merchants=[int(payable[m]) for m in merchants],
        fee=int(system["fees"]),
        funding=int(system["external_funding"]),
    )


def bench_store(store: str, options: Options, progress: Progress) -> StoreRun:
    result = StoreRun(store)
    with tempfile.TemporaryDirectory(prefix="penny-bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        with _store(store, tmp) as (database, cluster):
            key_hex = secrets.token_hex(32)
            started = time.perf_counter()
            the_seed = seed(
                database,
                ServerKey.from_hex(key_hex, source="bench"),
                buyers=options.buyers,
                merchants=options.merchants,
                progress=lambda label, f: progress(f"{store}: {label}", f),
            )
            result.seed_seconds = round(time.perf_counter() - started, 1)
            seed_path = tmp / "seed.json"
            the_seed.save(seed_path)
            result.journals_after_seed = counts(database)["journals"]
            fixture = _fixture(database, the_seed)
            if store == "sqlite":
                result.baselines["sqlite_raw_runs"] = [
                    round(
                        baseline(
                            database,
                            fixture,
                            options.baseline_seconds,
                            lambda _l, f: progress("sqlite: raw loop", f),
                        ),
                        1,
                    )
                ]
            else:
                _postgresql_baselines(store, cluster, options, result, progress)
            server = start_server(database.url, options.workers, key_hex, tmp / "server.log")
            try:
                _workloads(database, fixture, server, seed_path, options, result, progress)
            finally:
                server.stop()
            if store == "sqlite":
                result.baselines["sqlite_raw_runs"].append(
                    round(
                        baseline(
                            database,
                            fixture,
                            options.baseline_seconds,
                            lambda _l, f: progress("sqlite: raw loop (again)", f),
                        ),
                        1,
                    )
                )
                result.baselines["sqlite_raw"] = max(result.baselines["sqlite_raw_runs"])
            result.baselines["final_audit_clean"] = Ledger(database).audit().ok
    return result


def _postgresql_baselines(
    store: str, cluster: Any, options: Options, result: StoreRun, progress: Progress
) -> None:
    """pgbench's peak and (with ``--peer hordak``) django-hordak's rate on the same server."""
    assert cluster is not None
    from penny.bench.peers import hordak_rate, pgbench_peak

    # On Patroni the baselines run against the primary, by its own address.
    admin = cluster.url() if store != "patroni" else cluster.leader_url()
    result.baselines["pgbench"] = pgbench_peak(
        cluster.bindir,
        admin,
        options.baseline_seconds,
        lambda label, f: progress(f"postgresql: {label}", f),
    )
    if options.peer == "hordak":
        result.baselines["hordak"] = hordak_rate(
            admin,
            seconds=options.baseline_seconds,
            warmup=min(2.0, options.warmup),
            processes=options.peer_processes,
            progress=lambda label, f: progress(f"postgresql: {label}", f),
        )


@dataclass
class _Loader:
    """Runs one workload against the server, with the server's CPU time meanwhile."""

    server: Server
    seed_path: Path
    options: Options
    progress: Progress

    def __call__(
        self, workload: str, label: str, duration: float, rate: float | None = None
    ) -> LoadResult:
        cpu_before = self.server.cpu_seconds()
        batches_before = self.server.batches()
        loaded = run_load(
            workload,
            self.seed_path,
            self.server.port,
            processes=self.options.processes,
            connections=self.options.connections,
            warmup=self.options.warmup,
            duration=duration,
            progress=self.progress,
            label=label,
            rate=rate,
        )
        loaded.server_cpu_s = self.server.cpu_seconds() - cpu_before
        loaded.commands_per_batch = _per_batch(batches_before, self.server.batches())
        return loaded


def _workloads(
    database: Database,
    fixture: Fixture,
    server: Server,
    seed_path: Path,
    options: Options,
    result: StoreRun,
    progress: Progress,
) -> None:
    store = result.store
    load = _Loader(server, seed_path, options, progress)
    balance_start: dict[str, Any] | None = None
    if options.history:
        settle(database)
        balance_start = {"journals": counts(database)["journals"], **_probe(load, store, options)}
    for workload in options.workloads:
        before = counts(database)
        loaded = load(workload, f"{store}: {workload}", options.seconds)
        entry = loaded.as_dict()
        entry["check"] = check(database, before, loaded.moved)
        entry["server_rss_kib"] = server.rss_kib()
        result.workloads[workload] = entry
    w1 = result.workloads.get("W1")
    if w1 is not None and w1["per_s"] > 0:
        result.p6 = _p6(database, load, store, options, w1["per_s"])
    if options.history and balance_start is not None:
        result.history = _history(
            database, fixture, server, load, store, options, balance_start, progress
        )


def _p6(
    database: Database, load: _Loader, store: str, options: Options, w1_per_s: float
) -> dict[str, Any]:
    """P6: W1 again, open-loop at half the W1 throughput, for its Pay latencies."""
    rate = w1_per_s / 2
    before = counts(database)
    loaded = load("W1", f"{store}: P6 at 50 %", options.seconds, rate=rate)
    return {
        "rate": round(rate, 1),
        "achieved_per_s": round(loaded.per_s, 1),
        **loaded.ops.get("pay", {}),
        "errors": loaded.errors,
        "check": check(database, before, loaded.moved),
    }


def _history(
    database: Database,
    fixture: Fixture,
    server: Server,
    load: _Loader,
    store: str,
    options: Options,
    balance_start: dict[str, Any],
    progress: Progress,
) -> dict[str, Any]:
    """Fill the ledger to each history target and run a short W1 there, then the balance probe
    again (P5 and memory)."""
    points = []
    for target in options.history:
        fill(database, fixture, target, lambda label, f: progress(f"{store}: {label}", f))
        before = counts(database)
        loaded = load("W1", f"{store}: W1 at {target:,}", min(options.seconds, 5.0))
        points.append(
            {
                "journals": counts(database)["journals"],
                "w1_per_s": round(loaded.per_s, 1),
                "server_rss_kib": server.rss_kib(),
                "check_ok": check(database, before, loaded.moved)["ok"],
            }
        )
    settle(database)
    return {
        "points": points,
        "balance_start": balance_start,
        "balance_end": {"journals": counts(database)["journals"], **_probe(load, store, options)},
    }


def _probe(load: _Loader, store: str, options: Options) -> dict[str, Any]:
    """The P5 balance probe: :data:`BALANCE_PROBE_REPEATS` short open-loop runs of balance
    reads; the one with the lowest p99 stands for the point, its p99s all kept. A p99 of a
    few hundred reads measures the machine as much as the read: on a shared 2-core box one
    probe gave p99 324 ms and the next 38 ms for the same code, so both ends of P5 take the
    least disturbed of several, the same way."""
    seconds = max(1.0, min(options.seconds, 10.0) / 2)
    runs = [
        load("WB", f"{store}: balance probe", seconds, rate=BALANCE_PROBE_RATE).ops["balance"]
        for _ in range(BALANCE_PROBE_REPEATS)
    ]
    best = min(runs, key=lambda run: run["p99_ms"])
    return {**best, "p99_ms_runs": [run["p99_ms"] for run in runs]}


def settle(database: Database) -> None:
    """Let the store settle before a balance probe, the same way at both ends (P5): flush and
    truncate the WAL (SQLite), or checkpoint and vacuum-analyse (PostgreSQL). Without it the
    probe after the bulk fill of 10⁶ journals raced PostgreSQL's own autovacuum of them."""
    raw = database.write_engine.raw_connection()  # no SQLAlchemy transaction around it
    try:
        cursor = raw.cursor()
        if database.is_sqlite:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cursor.execute("CHECKPOINT")
            cursor.execute("VACUUM ANALYZE")
            raw.driver_connection.autocommit = False  # type: ignore[union-attr]
        cursor.close()
    finally:
        raw.close()


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def summarise(runs: dict[str, StoreRun], options: Options) -> dict[str, Any]:
    """The JSON of the run: per store figures, every ratio, and each target's verdict."""
    stores: dict[str, Any] = {
        name: {
            "seed_seconds": run.seed_seconds,
            "journals_after_seed": run.journals_after_seed,
            "workloads": run.workloads,
            "baselines": run.baselines,
            "p6": run.p6,
            "history": run.history,
        }
        for name, run in runs.items()
    }
    ratios = _ratios(runs, options)
    targets = _targets(runs, ratios)
    correct = all(entry["check"]["ok"] for run in runs.values() for entry in run.workloads.values())
    return {
        "benchmark": "penny bench http",
        "options": {
            "stores": list(options.stores),
            "workloads": list(options.workloads),
            "buyers": options.buyers,
            "merchants": options.merchants,
            "seconds": options.seconds,
            "warmup": options.warmup,
            "connections": options.connections,
            "load_processes": options.processes,
            "server_workers": options.workers,
            "history": list(options.history),
            "peer": options.peer,
            "client": "penny.bench.loadgen (asyncio HTTP/1.1 keep-alive, SigV2 HmacSHA256)",
        },
        "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "stores": stores,
        "ratios": ratios,
        "targets": targets,
        "correct": correct,
    }


def _per_s(runs: dict[str, StoreRun], store: str, workload: str) -> float | None:
    """The throughput of ``workload`` on ``store``, if it ran."""
    run = runs.get(store)
    entry = run.workloads.get(workload) if run else None
    return entry["per_s"] if entry else None


def _ratios(runs: dict[str, StoreRun], options: Options) -> dict[str, float | None]:
    """Every ratio of the run: between workloads, across the history, against the baselines."""
    ratios: dict[str, float | None] = {}
    for name, run in runs.items():
        w1 = _per_s(runs, name, "W1")
        ratios[f"{name}.W2/W1"] = _ratio(_per_s(runs, name, "W2"), w1)
        for workload in options.workloads:
            if workload != "W1":
                ratios[f"{name}.{workload}/W1"] = _ratio(_per_s(runs, name, workload), w1)
        if run.history.get("points"):
            first, last = run.history["points"][0], run.history["points"][-1]
            ratios[f"{name}.rss_last/rss_first"] = _ratio(
                last["server_rss_kib"], first["server_rss_kib"]
            )
            ratios[f"{name}.balance_p99_end/start"] = _ratio(
                run.history["balance_end"]["p99_ms"], run.history["balance_start"]["p99_ms"]
            )
    sqlite = runs.get("sqlite")
    if sqlite is not None and "sqlite_raw" in sqlite.baselines:
        ratios["sqlite.W1/raw_loop"] = _ratio(
            _per_s(runs, "sqlite", "W1"), sqlite.baselines["sqlite_raw"]
        )
    pg = runs.get("postgresql")
    if pg is not None and "pgbench" in pg.baselines:
        ratios["postgresql.W1/pgbench_peak"] = _ratio(
            _per_s(runs, "postgresql", "W1"), pg.baselines["pgbench"]["peak_tps"]
        )
    if pg is not None and "hordak" in pg.baselines:
        ratios["postgresql.W1/hordak"] = _ratio(
            _per_s(runs, "postgresql", "W1"), pg.baselines["hordak"]["transfers_per_s"]
        )
    return ratios


def _targets(
    runs: dict[str, StoreRun], ratios: dict[str, float | None]
) -> dict[str, dict[str, Any]]:
    """Each target's value and verdict (``None`` when the run did not measure it)."""
    targets: dict[str, dict[str, Any]] = {}

    def verdict(key: str, value: float | None, passed: bool | None) -> None:
        targets[key] = {"target": TARGETS[key], "value": value, "pass": passed}

    value = ratios.get("sqlite.W1/raw_loop")
    verdict("P1", value, None if value is None else value >= 1.0)
    value = ratios.get("postgresql.W1/pgbench_peak")
    verdict("P2", value, None if value is None else value >= 1.0)
    w2 = [v for k, v in ratios.items() if k.endswith(".W2/W1") and v is not None]
    verdict("P3", min(w2) if w2 else None, all(v >= 0.9 for v in w2) if w2 else None)
    value = ratios.get("postgresql.W1/hordak")
    verdict("P4", value, None if value is None else value >= 10.0)
    p5 = [v for k, v in ratios.items() if k.endswith("balance_p99_end/start") and v is not None]
    verdict("P5", max(p5) if p5 else None, all(v <= 1.2 for v in p5) if p5 else None)
    p6 = [run.p6["p99_ms"] for run in runs.values() if run.p6.get("p99_ms") is not None]
    verdict("P6", max(p6) if p6 else None, all(v <= 25.0 for v in p6) if p6 else None)
    mem = [v for k, v in ratios.items() if k.endswith("rss_last/rss_first") and v is not None]
    verdict("memory", max(mem) if mem else None, all(v <= 1.10 for v in mem) if mem else None)
    return targets


def run_http_bench(options: Options, progress: Progress) -> dict[str, Any]:
    runs = {store: bench_store(store, options, progress) for store in options.stores}
    return summarise(runs, options)

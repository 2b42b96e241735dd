"""The short version of the benchmarks that CI runs: they work, they say what they measured,
and the ledger they leave behind audits clean."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from penny.bench.ledger import run_balance_bench, run_ledger_bench
from penny.cli.main import app
from penny.storage.database import open_database

REQUIRED = {
    "store",
    "w1_per_s",
    "w2_per_s",
    "baseline_per_s",
    "w1_vs_baseline",
    "w2_vs_w1",
    "accounts",
    "journals_before",
}


def test_ledger_bench_short_run(database_url: str) -> None:
    database = open_database(database_url)
    try:
        result = run_ledger_bench(database, seconds=1.0, concurrency=32, warmup=0.2)
        data = result.as_dict()
    finally:
        database.dispose()
    assert set(data) >= REQUIRED
    assert data["store"] == database.dialect
    assert data["accounts"] == 10_000 + 100 + 2
    assert data["journals_before"] == 0
    assert data["w1_per_s"] > 0
    assert data["w2_per_s"] > 0
    assert data["baseline_per_s"] > 0
    assert data["workloads"]["W1"]["errors"] == 0
    # Every acknowledged payment is exactly one ok journal, and the audit is clean.
    assert data["audit_ok"] is True
    assert data["acknowledged_ok"] >= data["workloads"]["W1"]["payments"]


def test_balance_bench_short_run(database_url: str) -> None:
    database = open_database(database_url)
    try:
        data = run_balance_bench(database, sizes=[100, 2_000], reads=200)
    finally:
        database.dispose()
    journals = [point["journals"] for point in data["points"]]
    assert journals == [100, 2_000]
    assert data["audit_ok"] is True
    assert all(point["p50_us"] > 0 for point in data["points"])


def test_bench_cli_rejects_bad_options() -> None:
    result = CliRunner().invoke(app, ["bench", "ledger", "--store", "oracle"])
    assert result.exit_code == 2
    assert "--store must be 'sqlite' or 'postgresql'" in result.output
    result = CliRunner().invoke(app, ["bench", "balance", "--journals", "ten"])
    assert result.exit_code == 2


def test_bench_cli_json_on_sqlite() -> None:
    result = CliRunner().invoke(
        app, ["bench", "ledger", "--seconds", "0.5", "--concurrency", "16", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert set(data) >= REQUIRED
    assert data["audit_ok"] is True


def test_path_bench_drives_every_stage_and_pays_for_real(database_url: str) -> None:
    """``penny bench path``: every stage costs something, every Pay succeeded and the ledger
    audits clean afterwards (both stores)."""
    from penny.bench.path import STAGES, run_path_bench
    from penny.security import ServerKey

    database = open_database(database_url)
    try:
        result = run_path_bench(
            database,
            ServerKey.generate(),
            requests=120,
            batch=25,
            progress=lambda *_: None,
            buyers=40,
        )
    finally:
        database.dispose()
    data = result.to_json()
    assert data["succeeded"] == 120
    assert data["audit_clean"] is True
    assert set(data["us_per_request"]) == set(STAGES)
    assert all(value > 0 for value in data["us_per_request"].values()), data
    total = sum(data["us_per_request"].values())
    assert abs(data["total_us_per_request"] - total) < 1


def test_path_bench_cli_json() -> None:
    result = CliRunner().invoke(
        app, ["bench", "path", "--requests", "100", "--buyers", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["store"] == "sqlite"
    assert data["succeeded"] == 100

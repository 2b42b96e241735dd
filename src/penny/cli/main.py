"""The ``penny`` command: ``db upgrade``, ``audit``, ``bench ledger`` and friends.

Every command takes ``--database URL`` (default: ``$PENNY_DATABASE_URL``, else
``sqlite:///penny.db``; a plain file path is an SQLite database). Only the commands that are
meant to make a store (``db upgrade``, ``sandbox seed``, ``serve --create-database``) create a
missing one; the others refuse it, naming the path and the command that creates it.

Every error, a usage mistake as much as a refused request, is one line, ``error: …``, on
stderr, with exit status 2; an audit that finds a problem exits with status 1. Help is Click's
plain text, with option values labelled by what they mean (``URL``, ``N``, ``AMOUNT``).

This module is the top of the command line: it defines ``db upgrade``, ``audit`` and
``bench ledger|balance`` and assembles the groups of the other ``penny.cli`` modules, which
import what they share from :mod:`penny.cli.common`, never from here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated, Any, Final

import typer
from rich.table import Table

from penny.cli import bench_console, bench_http, bench_path, queries, serve
from penny.cli.accounts import accounts_app, keys_app
from penny.cli.api import api_app
from penny.cli.check import check_app
from penny.cli.common import (
    BenchStoreOption,
    DatabaseOption,
    JsonOption,
    app,
    bench_app,
    bench_store,
    console,
    db_app,
    ensure_server_key,
    fail,
    open_store,
    out,
    progress_bar,
)
from penny.cli.gatekeeper import bench_gatekeeper
from penny.cli.ipn import ipn_app
from penny.cli.sandbox import sandbox_app
from penny.cli.webhooks import webhooks_app
from penny.engine.ledger import Ledger
from penny.ledger.audit import AuditReport
from penny.storage.database import current_revision

__all__ = ["app", "main"]


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create the database, or bring its schema up to date (Penny also does this when it
    starts). Next to a new SQLite file it makes the server key file, penny-secret.key."""
    with open_store(database, create=True) as db:
        ensure_server_key(db)
        out.print(f"schema at revision {current_revision(db)} ({db.dialect})")


@app.command()
def audit(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Re-derive every balance from the journal and check that value is conserved."""
    with open_store(database) as db:
        with console.status("auditing the ledger…"):
            report = Ledger(db).audit()
        if as_json:
            out.print_json(json.dumps(_audit_dict(report)))
        else:
            _print_audit(report)
    if not report.ok:
        raise typer.Exit(code=1)


def _audit_dict(report: AuditReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "accounts": report.accounts,
        "journals": report.journals,
        "legs": report.legs,
        "conserved": report.conserved,
        "totals": {c: {"posted": p, "pending": q} for c, (p, q) in report.totals.items()},
        "mismatches": [
            {
                "account_id": m.account_id,
                "stored": asdict(m.stored),
                "derived": asdict(m.derived),
            }
            for m in report.mismatches
        ],
        "unbalanced": [
            {"journal_id": u.journal_id, "currency": u.currency, "total": u.total}
            for u in report.unbalanced
        ],
        "violations": [
            {"account_id": v.account_id, "code": v.code.name} for v in report.violations
        ],
        "anomalies": report.anomalies,
    }


def _print_audit(report: AuditReport) -> None:
    verdict = "[bold green]clean[/]" if report.ok else "[bold red]PROBLEMS FOUND[/]"
    out.print(
        f"audit {verdict}: {report.accounts} accounts, {report.journals} journals, "
        f"{report.legs} legs"
    )
    for currency, (posted, pending) in sorted(report.totals.items()):
        mark = "ok" if posted == 0 and pending == 0 else "NOT CONSERVED"
        out.print(f"  {currency}: debits − credits = {posted} posted, {pending} pending ({mark})")
    for m in report.mismatches:
        out.print(f"  account {m.account_id}: stored {m.stored} but the journal says {m.derived}")
    for u in report.unbalanced:
        out.print(f"  journal {u.journal_id}: legs in {u.currency} sum to {u.total}, not 0")
    for v in report.violations:
        out.print(f"  account {v.account_id}: breaks its bound ({v.code.name})")
    for anomaly in report.anomalies:
        out.print(f"  {anomaly}")


@bench_app.command("ledger")
def bench_ledger(
    database: DatabaseOption = None,
    store: BenchStoreOption = "sqlite",
    seconds: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.5, help="Measured seconds per phase.")
    ] = 10.0,
    concurrency: Annotated[
        int, typer.Option(metavar="N", min=1, help="Concurrent submitters.")
    ] = 512,
    as_json: JsonOption = False,
) -> None:
    """In-process engine benchmark: W1 (100 merchants), W2 (one hot merchant), and the
    one-transfer-per-commit SQL baseline, all on the same store in the same run."""
    from penny.bench.ledger import run_ledger_bench

    with bench_store(database, store) as db, progress_bar() as report:
        result = run_ledger_bench(db, seconds=seconds, concurrency=concurrency, progress=report)
    data = result.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        table = Table(title=f"penny bench ledger — {data['store']}")
        for column in ("phase", "per second", "p50 ms", "p99 ms", "errors", "mean batch"):
            table.add_column(column)
        table.add_row("baseline (1/commit)", f"{data['baseline_per_s']:,.0f}", "", "", "", "1")
        for name, w in data["workloads"].items():
            table.add_row(
                name,
                f"{w['per_s']:,.0f}",
                f"{w['p50_ms']:.2f}",
                f"{w['p99_ms']:.2f}",
                str(w["errors"]),
                str(w["mean_batch"]),
            )
        out.print(table)
        out.print(
            f"W1 ÷ baseline = {data['w1_vs_baseline']:.2f}, W2 ÷ W1 = {data['w2_vs_w1']:.2f}, "
            f"audit {'clean' if data['audit_ok'] else 'FAILED'}"
        )
    if not result.audit_ok:
        raise typer.Exit(code=1)


@bench_app.command("balance")
def bench_balance(
    database: DatabaseOption = None,
    store: BenchStoreOption = "sqlite",
    journals: Annotated[
        str,
        typer.Option(
            metavar="COUNTS", help="Comma-separated journal counts to measure at, ascending."
        ),
    ] = "1000,1000000",
    reads: Annotated[
        int, typer.Option(metavar="N", min=100, help="Balance reads per point.")
    ] = 5000,
) -> None:
    """Balance-read latency as the journal grows (a read must not slow with history)."""
    from penny.bench.ledger import run_balance_bench

    try:
        sizes = [int(part) for part in journals.split(",") if part.strip()]
    except ValueError:
        raise fail("--journals takes whole numbers separated by commas") from None
    if not sizes or min(sizes) < 1:
        raise fail("--journals needs at least one positive count")
    with bench_store(database, store) as db, progress_bar() as report:
        result = run_balance_bench(db, sizes=sizes, reads=reads, progress=report)
    sys.stdout.write(json.dumps(result) + "\n")
    if not result["audit_ok"]:
        raise typer.Exit(code=1)


app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(sandbox_app, name="sandbox")
bench_app.command("gatekeeper")(bench_gatekeeper)
app.add_typer(ipn_app, name="ipn")
app.add_typer(check_app, name="check")
app.add_typer(api_app, name="api")
app.add_typer(webhooks_app, name="webhooks")


def _listed_last(group: typer.Typer, names: Sequence[str]) -> None:
    """List ``names`` last in ``group``'s help, in this order, after the rest as registered.

    Typer lists commands and groups in the order they were registered, and the modules that
    add commands to a group of another module (``queries``, ``serve``, ``bench_http``,
    ``bench_path``, ``ipn``) register them when imported, before this module's own.
    """

    def rank(name: str | None) -> int:
        return names.index(name) + 1 if name in names else 0

    group.registered_commands.sort(
        key=lambda info: rank(info.name or getattr(info.callback, "__name__", None))
    )
    group.registered_groups.sort(key=lambda info: rank(info.name))


_listed_last(app, ("serve", "transactions", "instruments"))
_listed_last(bench_app, ("http", "path", "console"))
_listed_last(accounts_app, ("set-ipn-url", "list"))
#: The modules above that register their commands when imported (see :func:`_listed_last`).
SELF_REGISTERING: Final = (bench_console, bench_http, bench_path, queries, serve)


def main() -> None:
    app()

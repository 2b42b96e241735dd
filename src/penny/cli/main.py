"""The ``penny`` command: ``db upgrade``, ``audit``, ``bench ledger`` and friends.

Every command takes ``--database URL`` (default: ``$PENNY_DATABASE_URL``, else
``sqlite:///penny.db``). Errors a user can fix are printed as one clear line and exit with
status 2; an audit that finds a problem exits with status 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from penny import __version__
from penny.engine.ledger import Ledger
from penny.ledger.audit import AuditReport
from penny.storage.database import Database, DatabaseError, current_revision, open_database

app = typer.Typer(
    name="penny",
    help="Penny: a self-hosted aggregated-payments server, wire-compatible with Amazon FPS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks, each with its baseline measured in the same run.")
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")

console = Console(stderr=True)
out = Console()

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="Database URL (sqlite:///path or postgresql://…); default $PENNY_DATABASE_URL "
        "or sqlite:///penny.db.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` as one line on stderr; the caller raises the exit (status 2)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(code=2)


def emit(as_json: bool, data: dict[str, Any], lines: list[str]) -> None:
    """Print ``data`` as one JSON object with ``--json``, else ``lines`` as text."""
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        typer.echo("\n".join(lines))


@contextmanager
def _database(url: str | None) -> Iterator[Database]:
    try:
        database = open_database(url)
    except DatabaseError as exc:
        raise fail(str(exc)) from None
    try:
        yield database
    finally:
        database.dispose()


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create the schema or bring it up to date (Penny also does this when it starts)."""
    with _database(database) as db:
        out.print(f"schema at revision {current_revision(db)} ({db.dialect})")


@app.command()
def audit(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Re-derive every balance from the journal and check that value is conserved."""
    with _database(database) as db:
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
                "stored": vars_of(m.stored),
                "derived": vars_of(m.derived),
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


def vars_of(balance: Any) -> dict[str, int]:
    return {
        "debits_posted": balance.debits_posted,
        "credits_posted": balance.credits_posted,
        "debits_pending": balance.debits_pending,
        "credits_pending": balance.credits_pending,
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


@contextmanager
def _progress_bar() -> Iterator[Any]:
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(label: str, fraction: float) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=1000)
            progress.update(tasks[label], completed=int(fraction * 1000))

        yield report


@bench_app.command("ledger")
def bench_ledger(
    database: DatabaseOption = None,
    store: Annotated[
        str,
        typer.Option(
            help="Without --database: 'sqlite' (a temporary file) or 'postgresql' "
            "(a throwaway cluster started for the run)."
        ),
    ] = "sqlite",
    seconds: Annotated[float, typer.Option(min=0.5, help="Measured seconds per phase.")] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent submitters.")] = 512,
    as_json: JsonOption = False,
) -> None:
    """In-process engine benchmark: W1 (100 merchants), W2 (one hot merchant), and the
    one-transfer-per-commit SQL baseline, all on the same store in the same run."""
    from penny.bench.ledger import bench_database, run_ledger_bench

    if store not in {"sqlite", "postgresql"}:
        raise fail("--store must be 'sqlite' or 'postgresql'")
    try:
        with bench_database(database, store) as db, _progress_bar() as report:
            result = run_ledger_bench(db, seconds=seconds, concurrency=concurrency, progress=report)
    except DatabaseError as exc:
        raise fail(str(exc)) from None
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
    store: Annotated[str, typer.Option(help="Without --database: 'sqlite' or 'postgresql'.")] = (
        "sqlite"
    ),
    journals: Annotated[
        str, typer.Option(help="Comma-separated journal counts to measure at, ascending.")
    ] = "1000,1000000",
    reads: Annotated[int, typer.Option(min=100, help="Balance reads per point.")] = 5000,
) -> None:
    """Balance-read latency as the journal grows (a read must not slow with history)."""
    from penny.bench.ledger import bench_database, run_balance_bench

    try:
        sizes = [int(part) for part in journals.split(",") if part.strip()]
    except ValueError:
        raise fail("--journals takes whole numbers separated by commas") from None
    if not sizes or min(sizes) < 1:
        raise fail("--journals needs at least one positive count")
    if store not in {"sqlite", "postgresql"}:
        raise fail("--store must be 'sqlite' or 'postgresql'")
    with bench_database(database, store) as db, _progress_bar() as report:
        result = run_balance_bench(db, sizes=sizes, reads=reads, progress=report)
    sys.stdout.write(json.dumps(result) + "\n")
    if not result["audit_ok"]:
        raise typer.Exit(code=1)


@app.command()
def serve(
    database: DatabaseOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes. 1 serves from this process; N > 1 starts N uvicorn workers, "
            "each building the app from $PENNY_DATABASE_URL (set from --database) through "
            "penny.web.app:app_from_env. Each worker keeps its own /metrics.",
        ),
    ] = 1,
    request_timeout: Annotated[
        int,
        typer.Option(
            min=1,
            help="Seconds a client has to send a complete request (headers and body) before "
            "it is answered 408 and disconnected: slow clients cannot hold connections.",
        ),
    ] = 10,
    limit_concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="Most connections and requests at once per worker; beyond it, HTTP 503.",
        ),
    ] = 1000,
) -> None:
    """Run the Penny server: the FPS Query API at /, the health check at /healthz and
    Prometheus metrics at /metrics. Every FPS request is logged as one JSON line on stderr."""
    import os

    import uvicorn

    from penny.ipn.settings import PUBLIC_URL_ENV, IpnConfigError, IpnSettings
    from penny.security import ServerKeyError, load_server_key
    from penny.storage.database import DATABASE_URL_ENV
    from penny.web.app import create_app, freeze_startup_objects
    from penny.web.logs import configure_logging
    from penny.web.slowclients import REQUEST_TIMEOUT_ENV, GuardedHttpToolsProtocol

    # IPNs name the certificate at Penny's public address: this one unless told (docs/ipn.md).
    os.environ.setdefault(PUBLIC_URL_ENV, f"http://{host}:{port}")
    try:
        ipn = IpnSettings.from_env()
    except IpnConfigError as exc:
        raise fail(str(exc)) from None
    with _database(database) as db:
        console.print(
            f"Penny {__version__} on {db.dialect} ({_redacted(db.url)}), "
            f"listening on http://{host}:{port}/ with {workers} worker(s)  — health check: "
            "/healthz, metrics: /metrics"
        )
        configure_logging()
        _install_test_faults()
        os.environ[REQUEST_TIMEOUT_ENV] = str(request_timeout)
        limits: dict[str, Any] = {
            "http": GuardedHttpToolsProtocol,
            "limit_concurrency": limit_concurrency,
            "timeout_keep_alive": 5,
        }
        if workers == 1:
            app = create_app(db, ipn=ipn)
            freeze_startup_objects()
            uvicorn.run(app, host=host, port=port, log_level="warning", **limits)
            return
        if db.is_sqlite and (db.url in ("sqlite://", "sqlite:///") or "memory" in db.url):
            raise fail("--workers > 1 needs a database file or a PostgreSQL server")
        try:
            # Found (or, next to an SQLite file, created) once here, not raced by the workers.
            load_server_key(db.url)
        except ServerKeyError as exc:
            raise fail(str(exc)) from None
        # The workers open the database themselves (migrated above, once).
        os.environ[DATABASE_URL_ENV] = db.url
        uvicorn.run(
            "penny.web.app:app_from_env",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            **limits,
        )


def _install_test_faults() -> None:
    """``$PENNY_FAULTS`` (test builds only) breaks the server on purpose; unset, nothing."""
    from penny.check.faults import UnknownFaultError, install_from_env

    try:
        install_from_env()
    except UnknownFaultError as exc:
        raise fail(str(exc)) from None


def _redacted(url: str) -> str:
    """A database URL without its password, fit for a log line."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# Sub-apps that reuse the helpers above are imported last.
from penny.cli.accounts import accounts_app, keys_app  # noqa: E402

app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")


def main() -> None:
    app()


from penny.cli.sandbox import sandbox_app  # noqa: E402

app.add_typer(sandbox_app, name="sandbox")

from penny.cli.gatekeeper import bench_gatekeeper  # noqa: E402

bench_app.command("gatekeeper")(bench_gatekeeper)

from penny.cli.ipn import ipn_app  # noqa: E402

app.add_typer(ipn_app, name="ipn")

from penny.cli.check import check_app  # noqa: E402

app.add_typer(check_app, name="check")

# Registers `penny bench http` and `penny bench path`.
from penny.cli import bench_http, bench_path  # noqa: E402, F401

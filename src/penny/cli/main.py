"""The ``penny`` command: ``db upgrade``, ``audit``, ``bench ledger`` and friends.

Every command takes ``--database URL`` (default: ``$PENNY_DATABASE_URL``, else
``sqlite:///penny.db``; a plain file path is an SQLite database). Only the commands that are
meant to make a store (``db upgrade``, ``sandbox seed``, ``serve --create-database``) create a
missing one; the others refuse it, naming the path and the command that creates it.

Every error, a usage mistake as much as a refused request, is one line, ``error: …``, on
stderr, with exit status 2; an audit that finds a problem exits with status 1. Help is Click's
plain text, with option values labelled by what they mean (``URL``, ``N``, ``AMOUNT``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer._click import exceptions as click_errors  # Typer's own Click (typer >= 0.29)

from penny import __version__
from penny.cli.base import PennySubGroup, PennyTyper, penny_typer
from penny.engine.ledger import Ledger
from penny.ledger.audit import AuditReport
from penny.storage.database import (
    Database,
    DatabaseError,
    MissingDatabaseError,
    current_revision,
    open_database,
)

console = Console(stderr=True)
out = Console()


def command_name() -> str:
    """How this ``penny`` can be run from here: ``penny`` when that is the one on ``PATH``,
    else the path it was started by (``.venv/bin/penny`` after ``./scripts/run``)."""
    started = sys.argv[0] if sys.argv else ""
    if Path(started).name != "penny":
        return "penny"  # not the console script (python -c, a test runner)
    on_path = shutil.which("penny")
    if on_path is not None and Path(on_path).resolve() == Path(started).resolve():
        return "penny"
    relative = os.path.relpath(started)
    return relative if not relative.startswith("..") else str(Path(started).resolve())


def as_run(text: str) -> str:
    """``text`` with each quoted ``penny …`` command spelt as it can be run from here."""
    name = command_name()
    return text if name == "penny" else text.replace("`penny ", f"`{name} ")


def print_error(message: str) -> None:
    """Print ``error: message`` as one line on stderr."""
    console.print(f"[bold red]error:[/] {escape(as_run(message))}", soft_wrap=True, highlight=False)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` as one line on stderr; the caller raises the exit (status 2)."""
    print_error(message)
    return typer.Exit(code=2)


def _usage_message(error: click_errors.ClickException) -> str:
    """A Click usage error as one sentence, pointing at the command's ``--help``."""
    text = " ".join(error.format_message().split()).rstrip(".")
    text = text[:1].lower() + text[1:]
    if isinstance(error, click_errors.UsageError) and error.ctx is not None:
        text += f" (see `{error.ctx.command_path} --help`)"
    return text


class PennyGroup(PennySubGroup):
    """The root command: usage mistakes are reported in the same one-line style as the rest."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as error:  # a bare group: its help, as Click does
            error.show()
            sys.exit(error.exit_code)
        except click_errors.ClickException as error:
            print_error(_usage_message(error))
            sys.exit(error.exit_code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = PennyTyper(
    name="penny",
    cls=PennyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
db_app = penny_typer("Database schema.")
bench_app = penny_typer("Benchmarks, each with its baseline measured in the same run.")
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")


def _show_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"penny {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print Penny's version and exit.",
        ),
    ] = False,
) -> None:
    """Penny: a self-hosted aggregated-payments server, wire-compatible with Amazon FPS."""


DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        metavar="URL",
        help="The database: sqlite:///path, a plain file path, or postgresql://…; default "
        "$PENNY_DATABASE_URL, else sqlite:///penny.db.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def emit(as_json: bool, data: dict[str, Any], lines: list[str]) -> None:
    """Print ``data`` as one JSON object with ``--json``, else ``lines`` as text."""
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        typer.echo("\n".join(lines))


def require_charts(command: str) -> None:
    """Refuse up front, not after the run, when matplotlib (the ``charts`` extra) is absent."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise fail(
            f"{command} draws its chart with matplotlib, which ./scripts/run does not install: "
            "`.venv/bin/pip install -e '.[charts]'` adds it (./scripts/test installs it too)"
        )


def missing_database(error: MissingDatabaseError) -> str:
    """The one-line refusal of a store that does not exist yet, with the command to make it."""
    return (
        f"{error}: `penny db upgrade --database {error.location}` creates it (or check the "
        "path and $PENNY_DATABASE_URL for a typo)"
    )


@contextmanager
def _database(url: str | None, *, create: bool = False) -> Iterator[Database]:
    """The open store at ``url``; a missing one is created only with ``create``."""
    try:
        database = open_database(url, create=create)
    except MissingDatabaseError as exc:
        raise fail(missing_database(exc)) from None
    except DatabaseError as exc:
        raise fail(str(exc)) from None
    try:
        yield database
    finally:
        database.dispose()


def ensure_server_key(database: Database) -> None:
    """For a store being created: make its server key file if it needs one, and say so."""
    from penny.security import (
        SERVER_KEY_ENV,
        SERVER_KEY_FILE_ENV,
        ServerKeyError,
        key_file_path,
        load_server_key,
    )
    from penny.storage.database import sqlite_file

    path = sqlite_file(database.url)
    if path is None or os.environ.get(SERVER_KEY_ENV) or os.environ.get(SERVER_KEY_FILE_ENV):
        return
    key_file = key_file_path(path)
    existed = key_file.exists()
    try:
        load_server_key(database.url, create=True)
    except ServerKeyError as exc:
        raise fail(str(exc)) from None
    if not existed:
        console.print(
            f"made the server key file {escape(str(key_file))}: keep it with the database "
            "backups (without it the stored API secrets cannot be used)",
            soft_wrap=True,
            highlight=False,
        )


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create the database, or bring its schema up to date (Penny also does this when it
    starts). Next to a new SQLite file it makes the server key file, penny-secret.key."""
    with _database(database, create=True) as db:
        ensure_server_key(db)
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
            metavar="STORE",
            help="Without --database: 'sqlite' (a temporary file) or 'postgresql' "
            "(a throwaway cluster started for the run).",
        ),
    ] = "sqlite",
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
    store: Annotated[
        str, typer.Option(metavar="STORE", help="Without --database: 'sqlite' or 'postgresql'.")
    ] = ("sqlite"),
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

# These register commands on the apps above: bench http, bench path, serve, and the
# read-only views.
from penny.cli import bench_http, bench_path, queries, serve  # noqa: E402, F401

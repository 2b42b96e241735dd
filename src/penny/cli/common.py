"""What every ``penny`` command shares: the root command and its ``db`` and ``bench`` groups,
the ``--database`` and ``--json`` options, one-line errors, opening a store, progress bars.

The command modules (``accounts``, ``ipn``, ``queries``, ``serve``…) import from here and
:mod:`penny.cli.main` imports them to assemble the command line, so no module of the command
line imports :mod:`penny.cli.main` (it is the top: the ``penny`` console script). Some command
modules register their commands on :data:`app` and :data:`bench_app` when imported.
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
from typer._click import exceptions as click_errors  # Typer's own Click (typer >= 0.29)

from penny import __version__
from penny.cli.base import PennySubGroup, PennyTyper, penny_typer
from penny.storage.database import Database, DatabaseError, MissingDatabaseError, open_database

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
def open_store(url: str | None, *, create: bool = False) -> Iterator[Database]:
    """The open store at ``url``; a missing one is created only with ``create``."""
    try:
        database = open_database(url, create=create)
    except MissingDatabaseError as exc:
        raise fail(missing_database(exc)) from None
    except DatabaseError as exc:
        raise fail(str(exc)) from None
    with database:
        yield database


BenchStoreOption = Annotated[
    str,
    typer.Option(
        metavar="STORE",
        help="Without --database: 'sqlite' (a temporary file) or 'postgresql' "
        "(a throwaway cluster started for the run).",
    ),
]


@contextmanager
def bench_store(url: str | None, store: str) -> Iterator[Database]:
    """The store a benchmark measures (``--database``, else a new one of kind ``--store``); a
    store error, opening it or during the run, is a one-line error."""
    from penny.bench.ledger import bench_database

    if store not in {"sqlite", "postgresql"}:
        raise fail("--store must be 'sqlite' or 'postgresql'")
    try:
        with bench_database(url, store) as database:
            yield database
    except DatabaseError as exc:
        raise fail(str(exc)) from None


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


@contextmanager
def progress_bar() -> Iterator[Any]:
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

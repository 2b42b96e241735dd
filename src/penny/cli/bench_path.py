"""``penny bench path``: CPU per request per stage of the request path (see
:mod:`penny.bench.path`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from penny.cli.common import (
    BenchStoreOption,
    DatabaseOption,
    JsonOption,
    bench_app,
    bench_store,
    out,
)
from penny.cli.common import progress_bar as _progress_bar


@bench_app.command("path")
def bench_path(
    store: BenchStoreOption = "sqlite",
    requests: Annotated[int, typer.Option(min=100, metavar="N", help="W1 Pays to drive.")] = 5000,
    batch: Annotated[int, typer.Option(min=1, metavar="N", help="Requests per group commit.")] = 50,
    buyers: Annotated[
        int, typer.Option(min=2, metavar="N", help="Buyers seeded (one prepaid each).")
    ] = 1000,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """In process, without sockets: drive signed W1 Pays through the real stages (decode,
    authenticate, validate, group commit, load, decide, write, commit, render, log) and print
    the CPU time each stage takes per request."""
    from penny.bench.path import STAGES, run_path_bench
    from penny.security import ServerKey

    with bench_store(database, store) as db, _progress_bar() as report:
        result = run_path_bench(
            db, ServerKey.generate(), requests=requests, batch=batch, progress=report, buyers=buyers
        )
    data = result.to_json()
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table(title=f"penny bench path — {data['store']}, batches of {batch}")
    table.add_column("stage")
    table.add_column("µs CPU / request", justify="right")
    for stage in STAGES:
        table.add_row(stage, f"{data['us_per_request'][stage]:.1f}")
    table.add_row("total", f"{data['total_us_per_request']:.1f}")
    out.print(table)

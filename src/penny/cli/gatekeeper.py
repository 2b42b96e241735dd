"""``penny bench gatekeeper``: the per-Pay cost of GateKeeper (see penny.bench.gatekeeper)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from penny.cli.common import BenchStoreOption, DatabaseOption, JsonOption, bench_store

out = Console()


def bench_gatekeeper(
    database: DatabaseOption = None,
    store: BenchStoreOption = "sqlite",
    seconds: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.5, help="Pay seconds per mode.")
    ] = 6.0,
    as_json: JsonOption = False,
) -> None:
    """Microseconds per script evaluation, and Pay throughput with and without scripts."""
    from penny.bench.gatekeeper import MODES, run_gatekeeper_bench

    with bench_store(database, store) as db:
        result = run_gatekeeper_bench(db, seconds=seconds)
    data = result.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    table = Table(title=f"penny bench gatekeeper — {data['store']}")
    for column in ("mode", "Pays per second", "÷ no scripts"):
        table.add_column(column)
    for mode in MODES:
        table.add_row(
            mode, f"{data['pays_per_s'][mode]:,.0f}", f"{data['vs_no_scripts'][mode]:.3f}"
        )
    out.print(table)
    out.print(f"one script evaluation: {data['evaluation_us']:.1f} µs (compiled once, cached)")

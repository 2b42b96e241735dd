"""``penny bench console``: the merchant console's pages and CSV export at scale (see
:mod:`penny.bench.console`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from penny.cli.common import DatabaseOption, JsonOption, bench_app, fail, out
from penny.cli.common import progress_bar as _progress_bar


@bench_app.command("console")
def bench_console(
    store: Annotated[
        str,
        typer.Option(
            metavar="STORE",
            help="Stores to measure on throwaway databases, comma-separated: sqlite, postgresql.",
        ),
    ] = "sqlite,postgresql",
    rows: Annotated[
        int, typer.Option(min=100, metavar="N", help="Transactions to seed (one merchant).")
    ] = 1_000_000,
    days: Annotated[
        int, typer.Option(min=1, metavar="N", help="Spread them over this many days.")
    ] = 365,
    repeat: Annotated[int, typer.Option(min=1, metavar="N", help="Timed GETs per page.")] = 20,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Seed N transactions in bulk, serve them, and time the console's transactions page
    (newest, filtered, deep keyset page) and dashboard over HTTP, then read the CSV export of
    all N rows while sampling the server's resident memory."""
    from penny.bench.console import TARGET_MS, run_console_bench

    stores = [part.strip() for part in store.split(",") if part.strip()]
    if not stores or any(s not in ("sqlite", "postgresql") for s in stores):
        raise fail("--store takes sqlite, postgresql or both, comma-separated")
    if database is not None and len(stores) != 1:
        raise fail("--database goes with one --store")
    results = []
    with _progress_bar() as report:
        for name in stores:
            results.append(
                run_console_bench(
                    name,
                    rows=rows,
                    days=days,
                    repeat=repeat,
                    database_url=database,
                    progress=report,
                )
            )
    if as_json:
        out.print_json(json.dumps({"target_ms": TARGET_MS, "runs": results}))
        return
    for result in results:
        _print_run(result, TARGET_MS)


def _print_run(result: dict[str, Any], target_ms: float) -> None:
    """One store's run as a table and two lines."""
    table = Table(
        title=f"penny bench console — {result['store']}, {result['rows']:,} transactions"
        f" over {result['days']} days (seeded in {result['seed_seconds']} s)"
    )
    table.add_column("page")
    table.add_column("first ms", justify="right")
    table.add_column("median ms", justify="right")
    table.add_column("p95 ms", justify="right")
    for page, timing in result["pages"].items():
        table.add_row(
            page,
            f"{timing['first_ms']:.1f}",
            f"{timing['median_ms']:.1f}",
            f"{timing['p95_ms']:.1f}",
        )
    out.print(table)
    verdict = "under" if result["under_target"] else "NOT under"
    out.print(
        f"Every first render and median {verdict} {target_ms:.0f} ms (slowest first render "
        f"{result['slowest_first_ms']} ms, slowest median {result['slowest_median_ms']} ms)"
    )
    export = result["export"]
    out.print(
        f"CSV export: {export['csv_lines']:,} lines in {export['seconds']} s; server RSS "
        f"{export['rss_before_mib']} MiB before, {export['rss_peak_mib']} MiB at most "
        f"(+{export['rss_growth_mib']} MiB; +{export['rss_growth_after_first_tenth_mib']} MiB "
        "after the first tenth)"
    )

"""``penny bench http``: the end-to-end server benchmark (see :mod:`penny.bench.http`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from penny.cli.common import JsonOption, bench_app, fail, out, require_charts
from penny.cli.common import progress_bar as _progress_bar

if TYPE_CHECKING:
    from penny.bench.http import Options


def _list(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [item for item in items if item not in allowed]
    if not items or unknown:
        raise fail(f"{what} takes a comma-separated list of {', '.join(allowed)}")
    return items


_Stores = Annotated[
    str,
    typer.Option(
        metavar="STORE",
        help="Stores to measure, comma-separated: sqlite, postgresql, patroni (a throwaway "
        "etcd + three-node Patroni cluster with synchronous replication).",
    ),
]
_History = Annotated[
    str,
    typer.Option(
        metavar="COUNTS",
        help="Transaction counts to fill the ledger to for the memory and balance-latency "
        "checks (P5, memory), comma-separated, ascending; 'none' skips them.",
    ),
]
_Peer = Annotated[
    str,
    typer.Option(
        metavar="PEER", help="'hordak' (django-hordak in a throwaway virtualenv) or 'none'."
    ),
]
_BaselineSeconds = Annotated[
    float, typer.Option(metavar="SECONDS", min=0.5, help="Seconds per baseline run.")
]
_Output = Annotated[
    Path, typer.Option(metavar="DIR", help="Directory for bench-http.json and bench-http.png.")
]


@bench_app.command("http")
def bench_http(
    store: _Stores = "sqlite,postgresql",
    workloads: Annotated[str, typer.Option(metavar="NAMES", help="Workloads, comma-separated.")] = (
        "W1,W2,W4,W5,W6,W7"
    ),
    workers: Annotated[int, typer.Option(metavar="N", min=1, help="`penny serve --workers`.")] = 1,
    buyers: Annotated[int, typer.Option(metavar="N", min=2, help="Buyers seeded.")] = 10_000,
    merchants: Annotated[int, typer.Option(metavar="N", min=1, help="Merchants seeded.")] = 100,
    seconds: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.5, help="Measured seconds per workload.")
    ] = 10.0,
    warmup: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.0, help="Warm-up seconds per workload.")
    ] = 2.0,
    connections: Annotated[
        int, typer.Option(metavar="N", min=1, help="Keep-alive connections in all.")
    ] = 64,
    processes: Annotated[
        int, typer.Option(metavar="N", min=1, help="Load-generator processes.")
    ] = 2,
    history: _History = "100000,1000000",
    peer: _Peer = "hordak",
    baseline_seconds: _BaselineSeconds = 10.0,
    output: _Output = Path("bench-results"),
    as_json: JsonOption = False,
) -> None:
    """Penny over signed HTTP (penny serve + separate load generators) with baselines from the
    same run: SQLite raw loop, pgbench TPC-B, django-hordak. Writes JSON and a PNG chart."""
    from penny.bench.chart import write_chart
    from penny.bench.http import run_http_bench

    require_charts("penny bench http")

    options = _options(
        store,
        workloads,
        buyers,
        merchants,
        seconds,
        warmup,
        connections,
        processes,
        workers,
        history,
        peer,
        baseline_seconds,
    )
    with _progress_bar() as report:
        summary = run_http_bench(options, report)
    output.mkdir(parents=True, exist_ok=True)
    json_path = output / "bench-http.json"
    json_path.write_text(json.dumps(summary, indent=1))
    write_chart(summary, output / "bench-http.png")
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        _print(summary)
        out.print(f"written: {json_path} and {output / 'bench-http.png'}")
    if not summary["correct"]:
        raise typer.Exit(code=1)


def _print(summary: dict[str, Any]) -> None:
    table = Table(title="penny bench http")
    for column in (
        "store",
        "workload",
        "per second",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "CPU µs/req server + clients",
        "audit + counts",
    ):
        table.add_column(column)
    for store, data in summary["stores"].items():
        for name, w in data["workloads"].items():
            lat = w["ops"].get("all", {})
            table.add_row(
                store,
                name,
                f"{w['per_s']:,.0f}",
                f"{lat.get('p50_ms', 0):.2f}",
                f"{lat.get('p95_ms', 0):.2f}",
                f"{lat.get('p99_ms', 0):.2f}",
                str(w["errors"]),
                f"{w['server_cpu_us_per_request']:,} + {w['client_cpu_us_per_request']:,}",
                "ok" if w["check"]["ok"] else "FAILED",
            )
    out.print(table)
    for name, value in summary["ratios"].items():
        out.print(f"  {name} = {value}")
    for key, t in summary["targets"].items():
        verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "not measured"}[t["pass"]]
        out.print(f"  {key}: {verdict} ({t['value']}) — {t['target']}")


def _options(
    store: str,
    workloads: str,
    buyers: int,
    merchants: int,
    seconds: float,
    warmup: float,
    connections: int,
    processes: int,
    workers: int,
    history: str,
    peer: str,
    baseline_seconds: float,
) -> Options:
    """The benchmark's options from the command line's, checked."""
    from penny.bench.http import WORKLOADS, Options

    if peer not in {"hordak", "none"}:
        raise fail("--peer must be 'hordak' or 'none'")
    try:
        sizes = () if history == "none" else tuple(int(p) for p in history.split(",") if p)
    except ValueError:
        raise fail("--history takes whole numbers separated by commas, or 'none'") from None
    return Options(
        stores=_list(store, ("sqlite", "postgresql", "patroni"), "--store"),
        workloads=_list(workloads, WORKLOADS, "--workloads"),
        buyers=buyers,
        merchants=merchants,
        seconds=seconds,
        warmup=warmup,
        connections=connections,
        processes=processes,
        workers=workers,
        history=tuple(sorted(sizes)),
        peer=peer,
        baseline_seconds=baseline_seconds,
    )

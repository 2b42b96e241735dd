"""``penny check bank``: the Jepsen-style bank test, shipped as a command.

Starts Penny on 127.0.0.1, runs signed FPS clients against it while a nemesis SIGKILLs and
restarts it (and, on a throwaway PostgreSQL, crash-restarts the database once), then checks the
history against the store (:mod:`penny.check.verify`). Writes ``history.jsonl``,
``summary.json`` and ``throughput.png`` to ``--out``; exits 1 on any violation, printing the
first offending operations. See docs/reliability.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from penny.cli.base import penny_typer
from penny.cli.common import JsonOption, console, fail, require_charts

if TYPE_CHECKING:
    from penny.check.history import RunRecord
    from penny.check.verify import Verdict

check_app: typer.Typer = penny_typer("Correctness checks against a running Penny.")

_StoreOption = Annotated[
    str,
    typer.Option(
        metavar="STORE",
        help="Without --database: 'sqlite' (a file in --out), 'postgresql' (a throwaway "
        "cluster, crash-restarted once during the run) or 'patroni' (a throwaway etcd + "
        "three-node Patroni cluster with synchronous replication: leader kills and "
        "switchovers, see --failovers and --switchovers).",
    ),
]
_DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        metavar="URL",
        help="Run against this store instead (sqlite:///path or postgresql://…): a "
        "dedicated one, the test adds merchants, buyers and payments to it.",
        show_default=False,
    ),
]
_Processes = Annotated[int, typer.Option(metavar="N", min=1, max=8, help="Penny processes.")]
_Buyers = Annotated[
    int, typer.Option(metavar="N", min=1, help="Buyers (a prepaid + a credit each).")
]
_Merchants = Annotated[int, typer.Option(metavar="N", min=1, help="Merchants.")]
_Clients = Annotated[int, typer.Option(metavar="N", min=1, max=256, help="Concurrent clients.")]
_Duration = Annotated[
    float, typer.Option(metavar="SECONDS", min=1.0, help="Seconds of client traffic.")
]
_Kills = Annotated[int, typer.Option(metavar="N", min=0, help="SIGKILL trials during the run.")]
_Failovers = Annotated[
    int,
    typer.Option(metavar="N", min=0, help="--store patroni: SIGKILLs of the leader's postmaster."),
]
_Switchovers = Annotated[
    int, typer.Option(metavar="N", min=0, help="--store patroni: planned switchovers.")
]
_Seed = Annotated[int, typer.Option(metavar="N", help="Seed of every random choice.")]
_Out = Annotated[Path, typer.Option(metavar="DIR", help="Directory for history, summary and plot.")]
_RestartDatabase = Annotated[
    bool, typer.Option(help="With the throwaway PostgreSQL, crash-restart it once.")
]
_InjectFault = Annotated[
    str | None,
    typer.Option(
        metavar="FAULT",
        hidden=True,
        help="TEST ONLY: run the servers with $PENNY_FAULTS set to this (a broken build).",
    ),
]


@check_app.command("bank")
def bank(
    store: _StoreOption = "sqlite",
    database: _DatabaseOption = None,
    processes: _Processes = 1,
    buyers: _Buyers = 8,
    merchants: _Merchants = 3,
    clients: _Clients = 8,
    duration: _Duration = 30.0,
    kills: _Kills = 5,
    failovers: _Failovers = 2,
    switchovers: _Switchovers = 1,
    seed: _Seed = 1,
    out: _Out = Path("bank-check"),
    restart_database: _RestartDatabase = True,
    inject_fault: _InjectFault = None,
    as_json: JsonOption = False,
) -> None:
    """Run the bank test: concurrent signed FPS clients, a nemesis, and the checker."""
    from penny.check.bank import run_bank
    from penny.check.history import BankConfig
    from penny.check.plot import plot_run
    from penny.check.servers import ServerError
    from penny.check.verify import check, summary

    require_charts("penny check bank")

    if store not in {"sqlite", "postgresql", "patroni"}:
        raise fail("--store must be 'sqlite', 'postgresql' or 'patroni'")
    if processes > 1 and store == "sqlite" and database is None:
        raise fail("--processes > 1 needs PostgreSQL: use --store postgresql")
    config = BankConfig(
        store=store,
        database_url=database,
        processes=processes,
        buyers=buyers,
        merchants=merchants,
        clients=clients,
        duration_s=duration,
        kills=kills,
        seed=seed,
        out_dir=out,
        faults=inject_fault,
        restart_database=restart_database,
        failovers=failovers,
        switchovers=switchovers,
    )
    try:
        record = run_bank(config, progress=lambda line: console.print(line, highlight=False))
    except ServerError as exc:
        raise fail(str(exc)) from None
    verdict = check(record)
    data = summary(record, verdict)
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    plot_run(record, out / "throughput.png")
    _report(record, verdict, data, out, as_json=as_json)
    if not verdict.ok:
        raise typer.Exit(code=1)


def _report(
    record: RunRecord, verdict: Verdict, data: dict[str, Any], out: Path, *, as_json: bool
) -> None:
    """The run's summary: one JSON object, or the verdict, figures and first violations."""
    from penny.check.verify import first_ops

    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    c = data["counts"]
    typer.echo(
        f"{'PASS' if verdict.ok else 'FAIL'}: {data['store']}, {data['processes']} "
        f"process(es), {data['kills']} kills, {data['database_restarts']} database "
        f"restart(s), {data['duration_s']} s, {data['answered_per_s']} answered ops/s\n"
        f"  {c['operations']} operations: {c['acknowledged']} acknowledged, "
        f"{c['refused']} refused, {c['unknown']} unanswered, {c['reads']} reads, "
        f"{c['retried']} retried; mean restart {data['mean_restart_s']} s; audit "
        f"{'clean' if record.audit_clean else 'NOT CLEAN'}\n"
        f"  history {out / 'history.jsonl'}, plot {out / 'throughput.png'}"
    )
    _echo_cluster(data)
    for violation in verdict.violations[:10]:
        typer.echo(f"  VIOLATION [{violation.code}] {violation.message}")
    if len(verdict.violations) > 10:
        typer.echo(f"  … {len(verdict.violations) - 10} more in {out / 'summary.json'}")
    for op in first_ops(record, verdict):
        fields = {k: v for k, v in asdict(op).items() if v not in (None, [], "")}
        typer.echo(f"  first offending op: {json.dumps(fields)}")


def _echo_cluster(data: dict[str, object]) -> None:
    """On a Patroni cluster: the database faults' figures and every node's check."""
    figures = data.get("failover_figures")
    if isinstance(figures, dict):
        for kind, f in figures.items():
            typer.echo(
                f"  {f['count']} {kind}(s): no acknowledged write for p50 {f['no_write_s_p50']} s, "
                f"max {f['no_write_s_max']} s; writes/s before {f['writes_per_s_before_mean']}, "
                f"after {f['writes_per_s_after_mean']}"
            )
    nodes = data.get("nodes")
    if isinstance(nodes, list):
        for node in nodes:
            same = "same as the primary" if node["same_as_primary"] else "DIFFERS from primary"
            typer.echo(
                f"  {node['role']} {node['node']}: audit "
                f"{'clean' if node['audit_clean'] else 'NOT CLEAN'}, "
                f"{same}"
            )

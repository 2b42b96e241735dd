"""A PNG of a bank run: answered operations per second over time, with the faults marked.

Drawn with matplotlib's non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from penny.check.history import RunRecord

BUCKET_S = 1.0


def plot_run(record: RunRecord, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = max(1, math.ceil(record.duration_s / BUCKET_S))
    series: dict[str, list[int]] = {"ok": [0] * buckets, "refused": [0] * buckets}
    for op in record.ops:
        if op.client < 0 or op.completed is None or op.outcome not in series:
            continue
        index = min(buckets - 1, int(op.completed / BUCKET_S))
        series[op.outcome][index] += 1
    times = [i * BUCKET_S for i in range(buckets)]
    figure, axes = plt.subplots(figsize=(12, 4.5))
    axes.plot(times, series["ok"], label="answered OK / s", color="tab:green")
    axes.plot(times, series["refused"], label="refused (FPS error) / s", color="tab:orange")
    labelled: set[str] = set()
    styles = {
        "kill": ("tab:red", "-", "SIGKILL"),
        "up": ("tab:blue", ":", "restarted"),
        "db-down": ("black", "--", "PostgreSQL crash"),
        "db-up": ("grey", "--", "PostgreSQL back"),
        "failover": ("purple", "--", "leader SIGKILL (failover)"),
        "switchover": ("tab:cyan", "--", "switchover"),
    }
    for event in record.events:
        color, style, label = styles[event.kind]
        axes.axvline(
            event.t,
            color=color,
            linestyle=style,
            linewidth=0.8,
            alpha=0.7,
            label=None if label in labelled else label,
        )
        labelled.add(label)
    store = "PostgreSQL" if record.database_url.startswith("postgresql") else "SQLite"
    if record.config.store == "patroni" and record.config.database_url is None:
        store = "Patroni (3 nodes)"
    axes.set_title(
        f"penny check bank — {store}, {record.config.processes} process(es), "
        f"seed {record.config.seed}"
    )
    axes.set_xlabel("seconds since start")
    axes.set_ylabel("operations per second")
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

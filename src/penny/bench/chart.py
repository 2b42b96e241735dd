"""The PNG chart of ``penny bench http``: throughput and latency per workload, per store,
with the same-run baselines drawn as horizontal lines (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The same-run baselines drawn as lines: (key, field of its record or None, colour, style,
#: label).
_BASELINE_LINES: tuple[tuple[str, str | None, str, str, str], ...] = (
    ("sqlite_raw", None, "tab:blue", "--", "SQLite raw loop (1 transfer/commit)"),
    ("pgbench", "peak_tps", "tab:orange", "--", "pgbench TPC-B peak"),
    ("hordak", "transfers_per_s", "tab:red", ":", "django-hordak"),
)


def write_chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = summary["stores"]
    workloads = summary["options"]["workloads"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8))
    width = 0.8 / max(1, len(stores))
    colours = {"sqlite": "tab:blue", "postgresql": "tab:orange", "patroni": "tab:purple"}
    for position, (store, data) in enumerate(stores.items()):
        xs = [i + position * width for i in range(len(workloads))]
        per_s = [data["workloads"].get(w, {}).get("per_s", 0) for w in workloads]
        top.bar(xs, per_s, width, label=f"Penny {store}", color=colours.get(store))
        p50 = [
            data["workloads"].get(w, {}).get("ops", {}).get("all", {}).get("p50_ms", 0)
            for w in workloads
        ]
        p99 = [
            data["workloads"].get(w, {}).get("ops", {}).get("all", {}).get("p99_ms", 0)
            for w in workloads
        ]
        bottom.bar(xs, p99, width, color=colours.get(store), alpha=0.4, label=f"{store} p99")
        bottom.bar(xs, p50, width, color=colours.get(store), label=f"{store} p50")
        baselines = data["baselines"]
        for key, field, color, style, label in _BASELINE_LINES:
            if key in baselines:
                value = baselines[key] if field is None else baselines[key][field]
                top.axhline(value, color=color, linestyle=style, label=label)
    centre = [i + width * (len(stores) - 1) / 2 for i in range(len(workloads))]
    for axis in (top, bottom):
        axis.set_xticks(centre)
        axis.set_xticklabels(workloads)
    top.set_ylabel("requests / s")
    top.set_title("penny bench http — throughput (same-run baselines dashed)")
    top.legend(fontsize=8)
    bottom.set_ylabel("latency, ms")
    bottom.set_title("latency p50 (solid) and p99 (light)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

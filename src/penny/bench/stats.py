"""Small statistics helpers shared by the benchmarks: quantiles of latency samples."""

from __future__ import annotations


def quantile_ms(sorted_us: list[int], percent: int) -> float:
    """The ``percent`` quantile (nearest rank) of sorted µs samples, in ms (0 when empty)."""
    if not sorted_us:
        return 0.0
    index = min(len(sorted_us) - 1, (len(sorted_us) * percent) // 100)
    return round(sorted_us[index] / 1000, 3)

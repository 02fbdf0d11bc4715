"""Small helpers shared by the benchmarks: timing statistics and a uniform report line."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """The best (highest) rate over ``repeats`` runs of ``run`` (which returns a rate)."""
    return max(run() for _ in range(repeats))


def median_of(values: Sequence[float]) -> float:
    return statistics.median(values)


def now() -> float:
    return time.perf_counter()


def line(label: str, value: float, unit: str) -> str:
    return f"  {label:<44} {value:>12,.1f} {unit}"

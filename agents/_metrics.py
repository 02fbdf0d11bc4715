"""Agent counters in the Prometheus text exposition format."""

from __future__ import annotations

import re
from collections.abc import Mapping

_METRIC_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_text(counters: Mapping[str, Mapping[str, int]], prefix: str) -> str:
    """One ``counter`` per counter name (dots become underscores, ``_total`` appended), one
    sample per agent labelled ``agent="<name>"``; empty when there is nothing to export."""
    samples: dict[str, list[tuple[str, int]]] = {}
    for name, values in counters.items():
        for key, value in values.items():
            metric = prefix + _METRIC_UNSAFE.sub("_", key) + "_total"
            samples.setdefault(metric, []).append((name, value))
    lines = []
    for metric in sorted(samples):
        lines.append(f"# TYPE {metric} counter")
        lines += [f'{metric}{{agent="{name}"}} {value}' for name, value in samples[metric]]
    return "\n".join(lines) + "\n" if lines else ""

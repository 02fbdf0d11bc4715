"""Counters: cheap, per bus (and per agent), readable as a plain dict for export."""

from __future__ import annotations

from collections import Counter


class Counters:
    """Named monotonically increasing counters, e.g. ``rejected.signature``."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1) -> None:
        self._values[name] += amount

    def __getitem__(self, name: str) -> int:
        return self._values[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, for logs or a metrics exporter."""
        return dict(self._values)

    def total(self, prefix: str) -> int:
        """The sum of counters whose name starts with ``prefix``."""
        return sum(value for name, value in self._values.items() if name.startswith(prefix))

    def __repr__(self) -> str:
        return f"Counters({dict(sorted(self._values.items()))})"

"""A live progress display (rich) for a terminal: simulated time, jobs by state, frames per
second. Nothing is drawn when stdout is not a TTY."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from ._metrics import STATES, Sample
from ._scenario import Scenario


class Progress:
    """Use as a context manager; pass :meth:`update` as ``simulate(observer=...)``."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self._live: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.live import Live

            self._live = Live(refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def update(self, sample: Sample, scenario: Scenario) -> None:
        if self._live is None:
            return
        from rich.table import Table

        end = scenario.duration + scenario.drain
        table = Table(title=f"{scenario.name}: {scenario.agents:,} agents, seed {scenario.seed}")
        table.add_column("")
        table.add_column("", justify="right")
        table.add_row("simulated time", f"{sample.t:,.0f} / {end:,.0f} s")
        for state in STATES:
            table.add_row(f"jobs {state}", str(sample.jobs[state]))
        table.add_row("frames/s", f"{sum(sample.messages_per_s.values()):,.1f}")
        self._live.update(table)

"""``sweep``: one scenario over many seeds, one table — cheats caught, honest stake lost (must
be zero), conservation, settlement latency."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._report import Report, dumps
from ._runner import simulate
from ._scenario import Scenario

COLUMNS = (
    "seed",
    "jobs",
    "settled",
    "cheat jobs",
    "caught",
    "caught when checked",
    "missed when checked",
    "honest stake lost",
    "conserved",
    "latency p50 s",
    "latency p90 s",
    "ok",
)


@dataclass
class SweepResult:
    """One row per seed (see :data:`COLUMNS`) and whether every run passed every check."""

    scenario: Scenario
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(row["ok"] for row in self.rows)

    def markdown(self) -> str:
        lines = [
            f"# Sweep of `{self.scenario.name}` over {len(self.rows)} seeds",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        for row in self.rows:
            lines.append("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
        verdict = "every run passed every check" if self.ok else "**some runs FAILED a check**"
        return "\n".join([*lines, "", verdict, ""])

    def write(self, folder: str | Path) -> list[Path]:
        """``sweep.json`` and ``sweep.md`` in ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_text(dumps({"ok": self.ok, "rows": self.rows}))
        (out / "sweep.md").write_text(self.markdown())
        return [out / "sweep.json", out / "sweep.md"]


def row(report: Report) -> dict[str, Any]:
    """The sweep table's row for one run."""
    s = report.summary
    cheats = s["cheats"]
    latency = s["latency_s"]
    return {
        "seed": report.scenario.seed,
        "jobs": s["jobs"]["total"],
        "settled": s["jobs"]["settled"],
        "cheat jobs": cheats["caught"] + cheats["missed"] + cheats["unresolved"],
        "caught": cheats["caught"],
        "caught when checked": f"{cheats['caught_when_checked']}/{cheats['checked_by_honest']}",
        "missed when checked": cheats["missed_when_checked"],
        "honest stake lost": s["honest_stake_lost"],
        "conserved": s["checks"]["conserved"],
        "latency p50 s": latency.get("p50", "-"),
        "latency p90 s": latency.get("p90", "-"),
        "ok": report.ok,
    }


def sweep(
    scenario: Scenario,
    seeds: Iterable[int],
    *,
    on_run: Callable[[Report], None] | None = None,
) -> SweepResult:
    """Run ``scenario`` once per seed (sequentially, each in virtual time); ``on_run(report)``
    after each."""
    result = SweepResult(scenario)
    for seed in seeds:
        report = simulate(scenario.model_copy(update={"seed": seed}))
        result.rows.append(row(report))
        if on_run is not None:
            on_run(report)
    return result

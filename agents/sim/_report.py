"""A run's :class:`Report` and its directory: ``summary.json`` (deterministic),
``series.json`` (every sample), ``report.md`` (tables) and ``plots/*.png``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._metrics import Sample
from ._plots import write_plots
from ._scenario import Scenario


@dataclass
class Report:
    """The outcome of :func:`simulate`: ``summary`` (JSON-ready, deterministic: the same seed
    gives the same summary), the sampled series, every job's latency, and the wall times
    (kept out of the summary): ``timings`` has ``setup_s`` (chain, wallets, agents built),
    ``start_s`` (agents started), ``run_s`` (the simulated duration and drain) and
    ``total_s``."""

    scenario: Scenario
    summary: dict[str, Any]
    samples: list[Sample]
    latencies: list[float]
    wall_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check of the run held (see ``summary["checks"]``)."""
        return all(self.summary["checks"].values())

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``summary.json``, ``series.json``, ``report.md`` and the PNG plots."""
        self.files = write_report(self, Path(out_dir))
        return self.files


def dumps(data: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def write_report(report: Report, folder: Path) -> list[Path]:
    """Write the report directory; returns every file written."""
    folder.mkdir(parents=True, exist_ok=True)
    summary = report.summary
    files = [folder / "summary.json", folder / "series.json", folder / "report.md"]
    files[0].write_text(dumps(summary))
    series = [dataclasses.asdict(sample) for sample in report.samples]
    files[1].write_text(dumps({"samples": series, "latencies_s": report.latencies}))
    files[2].write_text(markdown(summary))
    clock = "wall" if summary.get("mode") else "simulated"
    plots = folder / "plots"
    files += write_plots(report.samples, report.latencies, summary["disputes"], plots, clock=clock)
    return files


def _ai(wei: int) -> str:
    return f"{wei / 10**18:,.2f}"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _reproducibility(summary: dict[str, Any]) -> str:
    mode = summary.get("mode")
    if not mode:
        return "Same seed, same report."
    return (
        f"Run on {mode['processes']} OS processes over libp2p and anvil in wall-clock time "
        "(seconds are wall seconds; chain time moved on to drain): not byte-identical."
    )


def markdown(summary: dict[str, Any]) -> str:
    """The human-readable report of one run."""
    sc = summary["scenario"]
    checks = summary["checks"]
    out = [
        f"# Swarm simulation `{sc['name']}` (seed {sc['seed']})",
        "",
        f"{summary['agents']['total']:,} agents, {sc['duration']:,.0f} simulated seconds of "
        f"job arrivals plus {sc['drain']:,.0f} s to drain. " + _reproducibility(summary),
        "",
        "## Checks",
        "",
        *_table(("check", "result"), [(k, "pass" if v else "**FAIL**") for k, v in checks.items()]),
        "## Agents",
        "",
        *_table(("role", "agents"), sorted(summary["agents"]["by_role"].items())),
        *_table(("dishonest behaviour", "agents"), sorted(summary["agents"]["dishonest"].items())),
        "## Jobs",
        "",
        *_table(("final state", "jobs"), [(k, v) for k, v in summary["jobs"].items()]),
        "## Cheats",
        "",
        *_table(("", "jobs"), sorted(summary["cheats"].items())),
        *_table(("dispute outcome", "disputes"), sorted(summary["disputes"].items())),
        f"Honest stake lost: {_ai(summary['honest_stake_lost'])} AI.",
        "",
        "## Settlement latency (simulated seconds, posted to final)",
        "",
        *_table(tuple(summary["latency_s"]), [tuple(summary["latency_s"].values())]),
        "## Tokens (AI)",
        "",
        *_table(
            ("", "AI"),
            [(k, _ai(v)) for k, v in sorted(summary["tokens"].items()) if k != "unit"],
        ),
        *_table(("conservation", "holds"), sorted(summary["conservation"].items())),
        "## Bus",
        "",
        *_table(
            ("frames sent, by type", "frames"), sorted(summary["bus"]["frames_by_type"].items())
        ),
        *_table(
            ("rejected or dropped on receipt", "frames"),
            sorted({**summary["bus"]["rejected"], **summary["bus"]["dropped"]}.items()),
        ),
        *_table(("network", "frames"), sorted(summary["network"].items())),
        "## Plots",
        "",
    ]
    for name in ("jobs", "messages", "balances", "stake", "burned", "disputes", "latency"):
        out.append(f"![{name}](plots/{name}.png)")
    return "\n".join(out) + "\n"

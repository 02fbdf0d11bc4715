"""The report's PNG plots (matplotlib, Agg backend: no display needed). Deterministic bytes:
no timestamps or version strings in the files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._metrics import STATES, Sample

_METADATA = {"Software": None}


def _figure(title: str, ylabel: str, clock: str = "simulated") -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=80)
    ax.set_title(title)
    ax.set_xlabel(f"{clock} time (s)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, format="png", metadata=_METADATA)
    plt.close(fig)
    return path


def _lines(ax: Any, t: list[float], series: dict[str, list[float]]) -> None:
    for name in sorted(series):
        ax.plot(t, series[name], label=name)
    if series:
        ax.legend(fontsize="small", loc="upper left")


def _keyed(samples: Sequence[Sample], pick: str, scale: float = 1.0) -> dict[str, list[float]]:
    keys = sorted({k for s in samples for k in getattr(s, pick)})
    return {k: [getattr(s, pick).get(k, 0) / scale for s in samples] for k in keys}


def write_plots(
    samples: Sequence[Sample],
    latencies: Sequence[float],
    outcomes: dict[str, int],
    folder: Path,
    *,
    clock: str = "simulated",
) -> list[Path]:
    """Write every plot into ``folder``; returns the paths. ``clock`` names the time axis:
    ``simulated`` seconds, or ``wall`` seconds of a ``--processes`` run."""
    folder.mkdir(parents=True, exist_ok=True)
    t = [s.t for s in samples]
    token = 10**18
    written = []

    fig, ax = _figure("Jobs by state", "jobs", clock)
    _lines(ax, t, {state: [s.jobs[state] for s in samples] for state in STATES})
    written.append(_save(fig, folder / "jobs.png"))

    fig, ax = _figure("Bus frames sent per second, by message type", "frames/s", clock)
    _lines(ax, t, _keyed(samples, "messages_per_s"))
    written.append(_save(fig, folder / "messages.png"))

    fig, ax = _figure("Token balances per role", "AI", clock)
    _lines(ax, t, _keyed(samples, "balance", token))
    written.append(_save(fig, folder / "balances.png"))

    fig, ax = _figure("Stake per role", "AI", clock)
    _lines(ax, t, _keyed(samples, "stake", token))
    written.append(_save(fig, folder / "stake.png"))

    fig, ax = _figure("Tokens burned (fees and slashes)", "AI", clock)
    ax.plot(t, [s.burned / token for s in samples])
    written.append(_save(fig, folder / "burned.png"))

    fig, ax = _figure("Disputes", "disputes opened", clock)
    ax.plot(t, [s.disputes for s in samples], label="opened (cumulative)")
    ax.set_xlabel(f"{clock} time (s); outcomes: " + (
        ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())) or "none"
    ))  # fmt: skip
    written.append(_save(fig, folder / "disputes.png"))

    fig, ax = _figure("Job latency: posted to settled, rejected or refunded", "jobs", clock)
    ax.set_xlabel(f"{clock} seconds")
    if latencies:
        ax.hist(list(latencies), bins=min(30, max(5, len(latencies) // 3)))
    written.append(_save(fig, folder / "latency.png"))
    return written

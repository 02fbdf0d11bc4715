"""``axl swarm simulate|sweep``: the simulator's sub-app, reached through the ``axl`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Axl


def test_axl_lists_swarm_and_its_commands(axl: Axl) -> None:
    code, out, _ = axl("--help")
    assert code == 0 and "swarm" in out
    code, out, _ = axl("swarm", "--help")
    assert code == 0 and "simulate" in out and "sweep" in out
    code, out, _ = axl("swarm", "sweep", "--help")
    assert code == 0 and "--seeds" in out


def test_an_invalid_scenario_is_one_line_and_status_2(axl: Axl) -> None:
    code, out, err = axl("swarm", "simulate", "--no-progress", "--set", "roles.nosuch=1")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["axl: invalid scenario: no scenario field 'roles.nosuch'"]
    assert "Traceback" not in out + err


@pytest.mark.slow
def test_axl_swarm_simulate_runs_the_simulator(axl: Axl, tmp_path: Path) -> None:
    out_dir = tmp_path / "report"
    sets = ["duration=60", "drain=30", "jobs.rate_per_hour=0", "spam_rate=0",
            "roles.solvers=1", "roles.verifiers=1", "roles.spammers=0"]  # fmt: skip
    args = ["swarm", "simulate", "--no-progress", "--seed", "5", "--out", str(out_dir)]
    for item in sets:
        args += ["--set", item]
    code, out, err = axl(*args)
    assert code == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["scenario"]["seed"] == 5 and summary["scenario"]["duration"] == 60
    assert all(summary["checks"].values())
    assert f"report: {out_dir / 'report.md'}" in out

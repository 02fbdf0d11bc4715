"""The ``swarm`` command line: scenario files, ``--set`` overrides, exit codes, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.sim import app
from agents.sim._cli import load_scenario

runner = CliRunner()


def test_set_values_are_toml_and_flags_override(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "from-file"\n[roles]\nsolvers = 7\n')
    scenario = load_scenario(
        path,
        ["roles.verifiers=4", "adversaries.cheats={wrong_op=1}", "network.loss=0.5"],
        seed=9,
    )
    assert scenario.name == "from-file" and scenario.seed == 9
    assert (scenario.roles.solvers, scenario.roles.verifiers) == (7, 4)
    assert scenario.adversaries.cheats == {"wrong_op": 1} and scenario.network.loss == 0.5


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--set", "roles.solver=3"],
        ["simulate", "--set", "novalue"],
        ["sweep", "--set", "adversaries.lazy=99"],
        ["simulate", "--scenario", "/nonexistent.toml"],
    ],
)
def test_an_invalid_scenario_exits_2_with_a_message(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "invalid scenario" in result.output


@pytest.mark.slow
def test_simulate_writes_the_report_directory(tmp_path: Path) -> None:
    out = tmp_path / "report"
    sets = [
        "duration=120",
        "drain=4500",
        "sample_interval=60",
        "roles.solvers=2",
        "roles.verifiers=1",
        "roles.submitters=1",
        "jobs.rate_per_hour=120",
        "market.challenge_window=600",
        "adversaries.cheats={wrong_final=1}",
    ]
    args = ["simulate", "--no-progress", "--seed", "2", "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"]["seed"] == 2 and all(summary["checks"].values())
    assert "# Swarm simulation" in (out / "report.md").read_text()
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == sorted(
        f"{n}.png"
        for n in ("jobs", "messages", "balances", "stake", "burned", "disputes", "latency")
    )
    assert all((out / "plots" / p).read_bytes().startswith(b"\x89PNG") for p in plots)

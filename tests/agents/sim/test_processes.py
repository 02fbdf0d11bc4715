"""``axl swarm simulate --processes N``: the scenario's agents spread over worker OS processes
on libp2p, with the chain on an anvil node the command starts; the same report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.cli import main
from agents.sim import InvalidScenario, Scenario
from agents.sim._processes import check, plan
from coordination import find_anvil


def axl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_the_plan_names_every_agent_and_its_behaviour() -> None:
    scenario = Scenario().with_changes(
        {"roles.solvers": 4, "roles.verifiers": 2, "roles.submitters": 1,
         "adversaries.cheats": {"wrong_op": 1}, "adversaries.vanishing": 1,
         "adversaries.false_accusers": 1}
    )  # fmt: skip
    members = plan(scenario)
    behaviours = {m.name: m.behaviour for m in members}
    assert behaviours == {
        "submitter0": "honest", "solver0": "cheat:wrong_op", "solver1": "vanishing",
        "solver2": "honest", "solver3": "honest", "verifier0": "false_accuser",
        "verifier1": "honest", "referee": "honest",
    }  # fmt: skip
    assert len({m.key for m in members}) == len(members)
    assert plan(scenario) == members  # from the seed


@pytest.mark.parametrize(
    "change", [{"adversaries.lazy": 1}, {"roles.spammers": 1}, {"adversaries.colluding_pairs": 1}]
)
def test_what_processes_cannot_run_is_refused(change: dict[str, int]) -> None:
    with pytest.raises(InvalidScenario, match="not supported with --processes"):
        check(Scenario().with_changes(change), 2)


def test_the_refusal_is_one_axl_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = axl(capsys, "swarm", "simulate", "--processes", "2", "--no-progress",
                       "--set", "adversaries.lazy=1")  # fmt: skip
    assert code == 2
    assert err.strip().splitlines() == [
        "axl: invalid scenario: adversaries.lazy: not supported with --processes (set it to 0)"
    ]


@pytest.mark.slow
@pytest.mark.skipif(find_anvil() is None, reason="anvil not installed (npm ci)")
def test_two_processes_run_the_market_and_write_the_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "report"
    sets = ["duration=20", "drain=1300", "sample_interval=2", "roles.submitters=1",
            "roles.solvers=2", "roles.verifiers=1", "jobs.rate_per_hour=360",
            "jobs.steps=[2, 3]"]  # fmt: skip
    args = ["swarm", "simulate", "--processes", "2", "--no-progress", "--seed", "3"]
    args += ["--out", str(out_dir)]
    for item in sets:
        args += ["--set", item]
    code, out, err = axl(capsys, *args)
    assert code == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["mode"] == {"processes": 2, "clock": "wall", "byte_identical": False}
    assert summary["agents"]["by_role"] == {"referee": 1, "solver": 2, "submitter": 1,
                                            "verifier": 1}  # fmt: skip
    jobs = summary["jobs"]
    assert jobs["total"] > 0 and jobs["settled"] == jobs["total"]
    assert all(summary["checks"].values()), summary["checks"]
    assert summary["tokens"]["escrow_held"] == 0
    assert "not byte-identical" in (out_dir / "report.md").read_text()
    assert (out_dir / "plots" / "jobs.png").stat().st_size > 0
    assert f"report: {out_dir / 'report.md'}" in out

"""``axl swarm simulate --processes N``: the scenario's agents spread over worker OS processes
on libp2p, with the chain on an anvil node the command starts; the same report files, bus
frames by type included; adversaries (cheats, lazy, colluding, spammers), the link profile
and timed partitions in workers; a worker started by hand joins through
``axl swarm worker --join``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.cli import main
from agents.sim import InvalidScenario, Scenario
from agents.sim._processes import check, plan, simulate_processes
from coordination import find_anvil


def axl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_the_plan_names_every_agent_its_behaviour_and_partner() -> None:
    scenario = Scenario().with_changes(
        {"roles.solvers": 5, "roles.verifiers": 3, "roles.submitters": 1, "roles.spammers": 1,
         "adversaries.cheats": {"wrong_op": 1}, "adversaries.vanishing": 1,
         "adversaries.lazy": 1, "adversaries.colluding_pairs": 1,
         "adversaries.false_accusers": 1}
    )  # fmt: skip
    members = plan(scenario)
    behaviours = {m.name: m.behaviour for m in members}
    assert behaviours == {
        "submitter0": "honest", "solver0": "cheat:wrong_op", "solver1": "lazy",
        "solver2": "vanishing", "solver3": "colluding", "solver4": "honest",
        "verifier0": "false_accuser", "verifier1": "colluding", "verifier2": "honest",
        "referee": "honest", "spammer0": "spammer",
    }  # fmt: skip
    partners = {m.name: m.partner for m in members if m.partner}
    assert partners == {"solver3": "verifier1", "verifier1": "solver3"}
    assert len({m.key for m in members}) == len(members)
    assert plan(scenario) == members  # from the seed


def test_every_scenario_runs_and_remote_is_bounded() -> None:
    for change in ({"adversaries.lazy": 1}, {"roles.spammers": 1},
                   {"adversaries.colluding_pairs": 1},
                   {"network.partitions": [{"start": 1, "duration": 5}]}):  # fmt: skip
        check(Scenario().with_changes(change), 2)
    with pytest.raises(InvalidScenario, match="--remote"):
        check(Scenario(), 2, remote=3)
    with pytest.raises(InvalidScenario, match="--processes"):
        check(Scenario(), 0)


def test_the_refusals_are_one_axl_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = axl(capsys, "swarm", "simulate", "--processes", "2", "--remote", "3",
                       "--no-progress")  # fmt: skip
    assert code == 2
    assert err.strip().splitlines() == [
        "axl: invalid scenario: --remote: between 0 and --processes"
    ]
    code, _, err = axl(capsys, "swarm", "simulate", "--remote", "1", "--no-progress")
    assert code == 2
    assert err.strip().splitlines() == ["axl: invalid scenario: --remote: only with --processes"]


def test_a_worker_with_nobody_to_join_fails_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = axl(capsys, "swarm", "worker", "--join", "/ip4/127.0.0.1/tcp/1/p2p/"
                       "12D3KooWQYV9dGMFoRzNStwpXztXaBUjtPqi6aU76ZgUriHhKust")  # fmt: skip
    assert code == 2  # no token: a usage error
    assert "--token" in err


def test_a_worker_refuses_an_unknown_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = axl(capsys, "swarm", "worker", "--join", "/ip4/127.0.0.1/tcp/1/p2p/x",
                       "--token", "ab", "--log-level", "chatty")  # fmt: skip
    assert code == 2
    assert "--log-level" in err and "'chatty'" in err


@pytest.mark.slow
@pytest.mark.skipif(find_anvil() is None, reason="anvil not installed (npm ci)")
def test_adversaries_in_two_processes_one_joined_by_hand(tmp_path: Path) -> None:
    """One worker is started here, the other by hand through ``axl swarm worker --join``
    (as on another machine, on loopback). Cheating, lazy and colluding solvers, a colluding
    verifier and a spammer, the default link profile and a short partition early on: every
    cheat an honest verifier checked is caught, honest stake is never lost, supply
    conserves, and the spam is rejected and counted by its victims."""
    scenario = Scenario().with_changes(
        {"seed": 3, "duration": 30, "drain": 6000, "sample_interval": 2,
         "roles.submitters": 1, "roles.solvers": 4, "roles.verifiers": 2, "roles.spammers": 1,
         "spam_rate": 5, "jobs.rate_per_hour": 900, "jobs.steps": [2, 3],
         "adversaries.cheats": {"wrong_op": 1}, "adversaries.lazy": 1,
         "adversaries.colluding_pairs": 1, "market.game_patience": 120,
         "network.partitions": [{"start": 1, "duration": 3, "share": 0.3}]}
    )  # fmt: skip
    by_hand: list[subprocess.Popen[bytes]] = []

    def start_worker(join: str, token: str) -> None:
        args = [sys.executable, "-m", "agents", "swarm", "worker", "--join", join]
        env = {**os.environ, "AXL_SWARM_TOKEN": token}
        with (tmp_path / "worker.err").open("wb") as err:
            by_hand.append(subprocess.Popen(args, env=env, stderr=err))

    out_dir = tmp_path / "report"
    try:
        report = simulate_processes(scenario, 2, out_dir=out_dir, remote=1, on_join=start_worker)
        assert by_hand[0].wait(timeout=60) == 0  # it stopped when the hub said so
    finally:
        for process in by_hand:
            process.kill()
            process.wait()
    log = (tmp_path / "worker.err").read_text()  # the worker by hand says what it does
    assert re.search(r"joined hub \S+ as worker [01]: hosting \d+ agents \(", log), log
    assert "the run started" in log and "the hub said stop" in log, log
    kept = (out_dir / "workers" / "worker0.err").read_text()  # the local worker's log, kept
    assert re.search(r"as worker [01]: hosting", kept) and "the hub said stop" in kept, kept
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary == report.summary
    assert summary["mode"] == {"processes": 2, "clock": "wall", "byte_identical": False}
    assert summary["workers"] == {"joined": 2, "stopped": 2}
    assert summary["agents"]["by_role"] == {"referee": 1, "solver": 4, "spammer": 1,
                                            "submitter": 1, "verifier": 2}  # fmt: skip
    assert summary["agents"]["dishonest"] == {"cheat:wrong_op": 1, "colluding": 2, "lazy": 1}
    assert all(summary["checks"].values()), summary["checks"]
    cheats = summary["cheats"]
    verdicts = {k: summary[k] for k in ("jobs", "cheats", "disputes", "network")}
    assert cheats["caught"] >= 1 and cheats["missed_when_checked"] == 0, json.dumps(verdicts)
    assert summary["jobs"]["settled"] >= 1
    assert summary["tokens"]["escrow_held"] == 0
    bus = summary["bus"]
    frames = bus["frames_by_type"]
    assert frames["market.job_posted"] >= 1 and frames["market.bid"] >= 1
    # the spammer's frames are counted as they leave (one to a peer gone unreachable too)
    assert frames["invalid"] >= bus["spam_sent"] > 0
    rejected = bus["rejected"]
    assert rejected["rejected.decode"] > 0 and rejected["rejected.signature"] > 0
    assert sum(rejected.values()) <= bus["spam_sent"]
    network = summary["network"]
    assert network["partitioned"] > 0 and network["delivered"] > 0
    assert any(s.messages_per_s.get("market.bid", 0) > 0 for s in report.samples)
    series = json.loads((out_dir / "series.json").read_text())
    assert any(s["messages_per_s"] for s in series["samples"])
    assert "| market.bid |" in (out_dir / "report.md").read_text()
    assert (out_dir / "plots" / "messages.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(find_anvil() is None, reason="anvil not installed (npm ci)")
def test_a_worker_with_the_wrong_token_is_refused_and_the_run_fails_in_one_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("agents.sim._processes.READY_TIMEOUT", 30.0)
    intruders: list[subprocess.Popen[bytes]] = []

    def start_intruder(join: str, token: str) -> None:
        args = [sys.executable, "-m", "agents", "swarm", "worker", "--join", join]
        env = {**os.environ, "AXL_SWARM_TOKEN": "00" * 16}
        intruders.append(subprocess.Popen(args, env=env, stderr=subprocess.PIPE))

    scenario = Scenario().with_changes({"roles.solvers": 1, "roles.verifiers": 0})
    try:
        with pytest.raises(InvalidScenario, match=r"within 30 s \(0 of 1 joined\)"):
            simulate_processes(scenario, 1, remote=1, on_join=start_intruder)
        _, err = intruders[0].communicate(timeout=60)
    finally:
        for process in intruders:
            process.kill()
            process.wait()
    assert intruders[0].returncode == 1
    assert err.decode().strip().splitlines()[-1] == ("axl: worker: the hub refused: wrong token")

"""Faults and adversaries one at a time: a solver that vanishes mid-job, a partition with
message loss, a colluding solver and verifier, and spam."""

from __future__ import annotations

import pytest

from agents.sim import Scenario, simulate

from .scenarios import SMALL, adversarial


def _scenario(**changes: object) -> Scenario:
    return Scenario.parse(SMALL).with_changes(changes)


@pytest.mark.slow
def test_a_vanishing_solver_costs_the_submitter_nothing() -> None:
    report = simulate(
        _scenario(
            **{
                "seed": 1,
                "roles.solvers": 2,
                "adversaries.vanishing": 1,
                "roles.spammers": 0,
                "jobs.rate_per_hour": 240,
            }
        )
    )
    s = report.summary
    assert s["agents"]["vanished"] == 1, s["jobs"]
    assert s["jobs"]["refunded"] >= 1  # the job it took came back after the deadline
    assert s["jobs"]["settled"] >= 1  # the other solver kept working
    assert s["conservation"]["escrow"] and report.ok  # nobody paid twice


@pytest.mark.slow
def test_partition_and_loss_cost_no_honest_stake() -> None:
    report = simulate(
        _scenario(
            **{
                "seed": 2,
                "adversaries.cheats": {"wrong_op": 1},
                "network.loss": 0.05,
                "network.partitions": [{"start": 60, "duration": 60, "share": 0.5}],
            }
        )
    )
    s = report.summary
    assert s["network"]["lost"] > 0 and s["network"]["partitioned"] > 0
    assert s["honest_stake_lost"] == 0
    assert report.ok, s["checks"]


@pytest.mark.slow
def test_a_colluding_verifier_lets_its_partner_through_when_it_alone_checks() -> None:
    report = simulate(
        _scenario(
            **{
                "seed": 5,
                "roles.solvers": 1,
                "roles.verifiers": 1,
                "jobs.checkers": 1,
                "adversaries.colluding_pairs": 1,
            }
        )
    )
    cheats = report.summary["cheats"]
    assert cheats["missed"] >= 1  # the partner's bad results settled
    assert cheats["checked_by_honest"] == 0  # ... because no honest verifier looked
    assert report.summary["disputes"] == {}


@pytest.mark.slow
def test_spam_is_rejected_on_receipt_and_never_handled() -> None:
    report = simulate(_scenario(seed=6, spam_rate=5.0))
    bus = report.summary["bus"]
    rejected = sum(bus["rejected"].values())
    assert bus["spam_sent"] > 1000
    assert bus["spam_sent"] * 0.95 <= rejected <= bus["spam_sent"]
    assert set(bus["rejected"]) <= {"rejected.decode", "rejected.signature"}
    assert bus["handler_errors"] == 0 and bus["task_errors"] == 0
    assert report.summary["jobs"]["settled"] >= 1


@pytest.mark.slow
def test_a_lazily_provisioned_swarm_starts_its_roles_on_demand_and_catches_cheats() -> None:
    scenario = adversarial(0).with_changes({"provision": "lazy"})
    report = simulate(scenario)
    cheats = report.summary["cheats"]
    assert cheats["caught_when_checked"] >= 1  # the referee judged from the start, too
    assert report.ok, (report.summary["checks"], cheats)

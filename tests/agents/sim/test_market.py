"""The swarm's agents are ``agents.market``'s roles: every member — honest or adversarial —
is played by an instance of the library's Submitter, Solver, Verifier or Referee (an
adversary overrides one hook or sets one adversarial option); only spammers are not."""

from __future__ import annotations

import pytest
import trio

from agents import Agent
from agents.market import Referee, Solver, Submitter, Verifier
from agents.sim import CHEAT_KINDS, Scenario
from agents.sim._adversaries import CheatingSolver, ColludingVerifier, LazySolver
from agents.sim._bank import TOKEN, Bank
from agents.sim._market import build_agents, cast, roster, shards
from agents.sim._spammer import Spammer
from agents.sim._world import World

ROLES = {"submitter": Submitter, "solver": Solver, "verifier": Verifier, "referee": Referee}


def _world(scenario: Scenario) -> World:
    return trio.run(_make_world, scenario)


async def _make_world(scenario: Scenario) -> World:
    market = scenario.market
    bank = Bank(
        challenge_window=market.challenge_window,
        dispute_window=market.dispute_window,
        fee_bps=market.fee_bps,
        payment=scenario.jobs.payment * TOKEN,
        roster=roster(scenario),
        eager=False,
    )
    return World(scenario, bank, eager=False)


@pytest.fixture(scope="module")
def swarm() -> tuple[World, list[Agent]]:
    scenario = Scenario.parse(
        {
            "roles": {"submitters": 2, "solvers": 12, "verifiers": 4, "spammers": 1},
            "adversaries": {
                "cheats": dict.fromkeys(CHEAT_KINDS, 1),
                "lazy": 1,
                "vanishing": 1,
                "false_accusers": 1,
                "colluding_pairs": 1,
            },
        }
    )
    world = _world(scenario)
    cast(scenario, world)
    return world, build_agents(world)


def test_every_market_member_is_played_by_a_library_role(
    swarm: tuple[World, list[Agent]],
) -> None:
    world, agents = swarm
    for agent in agents:
        member = world.members[agent.name]
        if member.role == "spammer":
            assert isinstance(agent, Spammer) and not isinstance(agent, tuple(ROLES.values()))
        else:
            assert isinstance(agent, ROLES[member.role]), (member, type(agent))


def test_each_adversary_is_the_subclass_or_option_its_behaviour_names(
    swarm: tuple[World, list[Agent]],
) -> None:
    world, agents = swarm
    seen: set[str] = set()
    for agent in agents:
        behaviour = world.members[agent.name].behaviour
        seen.add(behaviour)
        if behaviour.startswith("cheat:"):
            assert isinstance(agent, CheatingSolver) and agent.kind == behaviour[6:]
        elif behaviour == "lazy":
            assert isinstance(agent, LazySolver)
        elif behaviour == "vanishing":
            assert isinstance(agent, Solver) and agent.config.vanish
        elif behaviour == "false_accuser":
            assert isinstance(agent, Verifier) and agent.config.false_alarm
        elif behaviour == "colluding" and world.members[agent.name].role == "verifier":
            assert isinstance(agent, ColludingVerifier)
            assert world.members[agent.name].shard == world.members[agent.partner].shard
        elif behaviour == "colluding":
            assert isinstance(agent, CheatingSolver) and agent.kind == "wrong_op"
        elif behaviour == "honest" and isinstance(agent, Solver | Verifier):
            assert type(agent).__name__ in ("SimSolver", "SimVerifier")
            assert not getattr(agent.config, "vanish", False)
            assert not getattr(agent.config, "false_alarm", False)
    assert seen >= {f"cheat:{k}" for k in CHEAT_KINDS} | {"lazy", "vanishing", "false_accuser"}


def test_a_large_swarm_trades_in_shards_each_with_a_submitter_and_solvers() -> None:
    scenario = Scenario.parse(
        {"roles": {"submitters": 10, "solvers": 900, "verifiers": 89}, "provision": "lazy"}
    )
    assert shards(scenario) == 4  # 1,000 agents, 250 per shard
    world = _world(scenario)
    cast(scenario, world)
    topics = {world.topic(m.shard) for m in world.members.values() if m.role == "solver"}
    assert len(topics) == 4 and "market.jobs" not in topics
    for shard in range(4):
        assert world.by_shard[("submitter", shard)] and world.by_shard[("solver", shard)]
        drawn = world.candidates(7, shard)
        assert len(drawn) == scenario.jobs.candidates
        assert all(world.members[name].shard == shard for name in drawn)

"""The one place where the simulator meets the market roles: who plays what (honest or not,
in which shard of the market) and which class plays it — ``agents.market``'s roles as
configured in ``_agents.py``, or an adversary subclass of them from ``_adversaries.py``."""

from __future__ import annotations

import math

from agents import Agent
from coordination import Role

from ._adversaries import (
    CheatingSolver,
    ColludingVerifier,
    FalseAccuser,
    LazySolver,
    VanishingSolver,
)
from ._agents import SimReferee, SimSolver, SimSubmitter, SimVerifier
from ._bank import Roster
from ._scenario import Scenario
from ._spammer import Spammer
from ._world import HONEST, Member, World


def shards(scenario: Scenario) -> int:
    """How many market topics the swarm trades on: one per ``market.shard_size`` agents, at
    most one per submitter and per solver (every shard has both)."""
    roles = scenario.roles
    wanted = math.ceil(scenario.agents / scenario.market.shard_size)
    return max(1, min(wanted, roles.submitters, roles.solvers))


def cast(scenario: Scenario, world: World) -> list[Member]:
    """Create every member of the swarm with its role, behaviour and shard. Which solvers and
    verifiers are dishonest is a seeded draw, so the seed decides it; the i-th agent of a role
    trades in shard ``i mod shards`` (a colluding verifier in its partner's)."""
    roles, adv = scenario.roles, scenario.adversaries
    world.shards = count = shards(scenario)
    rng = world.rng("cast")
    solvers = [f"solver-{i}" for i in range(roles.solvers)]
    verifiers = [f"verifier-{i}" for i in range(roles.verifiers)]
    bad_solvers = rng.sample(solvers, adv.dishonest_solvers)
    bad_verifiers = rng.sample(verifiers, adv.dishonest_verifiers)
    solver_roles: list[tuple[str, str | None]] = []
    for kind, number in sorted(adv.cheats.items()):
        solver_roles += [(f"cheat:{kind}", None)] * number
    solver_roles += [("lazy", None)] * adv.lazy + [("vanishing", None)] * adv.vanishing
    pairs = [(bad_solvers.pop(), bad_verifiers.pop()) for _ in range(adv.colluding_pairs)]
    behaviour: dict[str, tuple[str, str | None]] = {}
    for solver, (kind, _) in zip(bad_solvers, solver_roles, strict=True):
        behaviour[solver] = (kind, None)
    for verifier in bad_verifiers:
        behaviour[verifier] = ("false_accuser", None)
    for solver, verifier in pairs:
        behaviour[solver] = ("colluding", verifier)
        behaviour[verifier] = ("colluding", solver)
    members = [Member("referee", "referee")]
    members += [
        Member(f"submitter-{i}", "submitter", shard=i % count) for i in range(roles.submitters)
    ]
    for i, name in enumerate(solvers):
        kind, partner = behaviour.get(name, (HONEST, None))
        members.append(Member(name, "solver", kind, partner, shard=i % count))
    for i, name in enumerate(verifiers):
        kind, partner = behaviour.get(name, (HONEST, None))
        shard = int(partner.split("-")[1]) % count if partner else i % count
        members.append(Member(name, "verifier", kind, partner, shard=shard))
    members += [Member(f"spammer-{i}", "spammer", "spammer") for i in range(roles.spammers)]
    return [world.add(member) for member in members]


def roster(scenario: Scenario) -> Roster:
    """Every agent with an account and the role it stakes for (None: tokens only), in the
    order :func:`cast` names them."""
    roles = scenario.roles
    return (
        ("referee", Role.REFEREE),
        *((f"submitter-{i}", None) for i in range(roles.submitters)),
        *((f"solver-{i}", Role.SOLVER) for i in range(roles.solvers)),
        *((f"verifier-{i}", Role.VERIFIER) for i in range(roles.verifiers)),
    )


def build(world: World, member: Member) -> Agent:
    """The agent playing ``member``."""
    name, behaviour = member.name, member.behaviour
    if member.role == "referee":
        return SimReferee(world, name)
    if member.role == "submitter":
        return SimSubmitter(world, name)
    if member.role == "spammer":
        return Spammer(world, name)
    if member.role == "solver":
        if behaviour.startswith("cheat:"):
            return CheatingSolver(world, name, behaviour.split(":", 1)[1])
        if behaviour == "colluding":
            return CheatingSolver(world, name, "wrong_op")
        if behaviour == "lazy":
            return LazySolver(world, name)
        if behaviour == "vanishing":
            return VanishingSolver(world, name)
        return SimSolver(world, name)
    if behaviour == "false_accuser":
        return FalseAccuser(world, name)
    if behaviour == "colluding" and member.partner is not None:
        return ColludingVerifier(world, name, member.partner)
    return SimVerifier(world, name)


def build_agents(world: World) -> list[Agent]:
    """One agent per member, named after it (also kept in ``world.agents``)."""
    for member in world.members.values():
        world.agents[member.name] = build(world, member)
    return list(world.agents.values())

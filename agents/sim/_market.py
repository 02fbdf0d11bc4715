"""The one place where the simulator meets the market roles: who plays what (honest or not)
and which agent class plays it. Today the roles are the stand-ins of ``_roles.py``; when
``agents.market`` lands, :func:`build_agents` maps the same members onto its roles and
configs, and nothing else in the simulator changes."""

from __future__ import annotations

from agents import Agent
from coordination import Role

from ._bank import Roster
from ._roles import Referee, Solver, Spammer, Submitter, Verifier
from ._scenario import Scenario
from ._world import HONEST, Member, World


def cast(scenario: Scenario, world: World) -> list[Member]:
    """Create every member of the swarm with its role and behaviour. Which solvers and
    verifiers are dishonest is a seeded draw, so the seed decides it."""
    roles, adv = scenario.roles, scenario.adversaries
    rng = world.rng("cast")
    solvers = [f"solver-{i}" for i in range(roles.solvers)]
    verifiers = [f"verifier-{i}" for i in range(roles.verifiers)]
    bad_solvers = rng.sample(solvers, adv.dishonest_solvers)
    bad_verifiers = rng.sample(verifiers, adv.dishonest_verifiers)
    solver_roles: list[tuple[str, str | None]] = []
    for kind, count in sorted(adv.cheats.items()):
        solver_roles += [(f"cheat:{kind}", None)] * count
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
    members += [Member(f"submitter-{i}", "submitter") for i in range(roles.submitters)]
    for name in solvers:
        kind, partner = behaviour.get(name, (HONEST, None))
        members.append(Member(name, "solver", kind, partner))
    for name in verifiers:
        kind, partner = behaviour.get(name, (HONEST, None))
        members.append(Member(name, "verifier", kind, partner))
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


_CLASSES: dict[str, type[Agent]] = {
    "referee": Referee,
    "submitter": Submitter,
    "solver": Solver,
    "verifier": Verifier,
    "spammer": Spammer,
}


def build_agents(world: World) -> list[Agent]:
    """One agent per member, named after it."""
    agents: list[Agent] = []
    for member in world.members.values():
        cls = _CLASSES[member.role]
        agents.append(cls(member.name, world))  # type: ignore[call-arg]
    return agents

"""Running one scenario: the swarm on the memory network and the embedded chain, in virtual
time (trio's MockClock), with every random choice drawn from the scenario seed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from axl import BusConfig, LinkProfile, MemoryNetwork, PeerId

from .._runtime import AgentRuntime
from .._wiring import trio_wall_clock
from ..market import Solver, Submitter
from ._bank import CLOCK_STEP, EAGER_LIMIT, TOKEN, Bank
from ._market import build_agents, cast, roster
from ._metrics import Collector, Sample, latency_stats, token_flows
from ._netstats import TrafficCounter, counting_factory
from ._report import Report
from ._scenario import Scenario
from ._world import World

Observer = Callable[[Sample, Scenario], None]


def simulate(
    scenario: Scenario, *, out_dir: str | Path | None = None, observer: Observer | None = None
) -> Report:
    """Run ``scenario`` to the end (its ``duration`` plus ``drain`` simulated seconds) and
    return its :class:`Report`; with ``out_dir``, also write the report directory.
    ``observer(sample, scenario)`` is called at every sample (e.g. a progress display).

    Blocking (it runs its own trio loop). Raises :class:`InvalidScenario` only through
    :class:`Scenario` itself; a misbehaving agent never stops the run."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    wall = time.perf_counter()
    with _deterministic_trio(scenario.seed):
        report: Report = trio.run(_simulate, scenario, observer, clock=clock)
    report.wall_seconds = time.perf_counter() - wall
    if out_dir is not None:
        report.write(out_dir)
    return report


@contextmanager
def _deterministic_trio(seed: int) -> Iterator[None]:
    """trio runs the tasks that became ready together in a shuffled order (to shake out
    bugs), and tasks woken by equal deadlines come in an order set by memory addresses. A
    simulation must replay exactly: sort each batch by task creation and shuffle it with a
    generator seeded from the scenario — the switch pytest-trio flips for Hypothesis."""
    from trio._core import _run

    saved = getattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", None)
    rng = getattr(_run, "_r", None)
    state = rng.getstate() if rng is not None else None
    if rng is not None and saved is not None:
        _run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
        rng.seed(seed)
    try:
        yield
    finally:
        if rng is not None and saved is not None and state is not None:
            _run._ALLOW_DETERMINISTIC_SCHEDULING = saved  # type: ignore[misc]
            rng.setstate(state)


async def _simulate(scenario: Scenario, observer: Observer | None) -> Report:
    wall0 = time.perf_counter()
    eager = scenario.provision == "eager" or (
        scenario.provision == "auto" and scenario.agents <= EAGER_LIMIT
    )
    bank = Bank(
        challenge_window=scenario.market.challenge_window,
        dispute_window=scenario.market.dispute_window,
        fee_bps=scenario.market.fee_bps,
        payment=scenario.jobs.payment * TOKEN,
        roster=roster(scenario),
        eager=eager,
    )
    world = World(scenario, bank, eager=eager)
    cast(scenario, world)
    net = scenario.network
    network = MemoryNetwork(
        seed=scenario.seed,
        default_link=LinkProfile(latency=net.latency, jitter=net.jitter, loss=net.loss),
        queue_capacity=4096,
    )
    traffic = TrafficCounter()
    spammers: set[PeerId] = set()
    runtime = AgentRuntime(
        transport=counting_factory(network, traffic, spammers),
        seed=f"axl-sim-{scenario.seed}".encode(),
        bus_config=BusConfig(clock=trio_wall_clock()),
        flush_interval=None,
    )
    funded = dict(roster(scenario)) if eager else {}
    for agent in build_agents(world):
        name = agent.name
        runtime.add(agent, chain=bank.fund(name, funded[name]) if name in funded else None)
        world.members[agent.name].peer = agent.peer_id
        if world.members[agent.name].role == "spammer":
            spammers.add(agent.peer_id)
    collector = Collector(world, traffic)
    end = scenario.duration + scenario.drain
    timings = {"setup_s": time.perf_counter() - wall0}
    async with runtime, trio.open_nursery() as nursery:
        timings["start_s"] = time.perf_counter() - wall0 - timings["setup_s"]
        wall1 = time.perf_counter()
        nursery.start_soon(_keep_chain_time, bank)
        nursery.start_soon(_partitions, scenario, world, network)
        t = 0.0
        while t < end:
            t = min(end, t + scenario.sample_interval)
            await trio.sleep_until(t)
            sample = collector.sample(t)
            if observer is not None:
                observer(sample, scenario)
        nursery.cancel_scope.cancel()
        timings["run_s"] = time.perf_counter() - wall1
    collector.poll(end)
    summary = _summary(scenario, world, collector, runtime.totals(), network)
    outcomes = collector.outcomes()
    timings["total_s"] = time.perf_counter() - wall0
    return Report(scenario, summary, collector.samples, outcomes["latencies"], timings=timings)


async def _keep_chain_time(bank: Bank) -> None:
    while True:
        await trio.sleep(CLOCK_STEP)
        bank.sync_time()


async def _partitions(scenario: Scenario, world: World, network: MemoryNetwork) -> None:
    """Timed partitions, one after the other in start order: a seeded share of the agents is
    cut off from the rest, then the network heals."""
    rng = world.rng("partitions")
    peers = [m.peer for m in world.members.values() if m.peer is not None]
    for part in sorted(scenario.network.partitions, key=lambda p: p.start):
        if trio.current_time() < part.start:
            await trio.sleep_until(part.start)
        island = rng.sample(peers, max(1, round(part.share * len(peers))))
        network.partition(island)
        await trio.sleep(part.duration)
        network.heal()


def _summary(
    scenario: Scenario,
    world: World,
    collector: Collector,
    totals: dict[str, int],
    network: MemoryNetwork,
) -> dict[str, Any]:
    outcomes = collector.outcomes()
    ledger = collector.ledger
    conservation = collector.conservation()
    by_role: dict[str, int] = {}
    behaviours: dict[str, int] = {}
    for member in world.members.values():
        by_role[member.role] = by_role.get(member.role, 0) + 1
        if not member.honest and member.role != "spammer":
            behaviours[member.behaviour] = behaviours.get(member.behaviour, 0) + 1
    final = collector.samples[-1].jobs if collector.samples else {}
    cheats = outcomes["cheats"]
    journal = world.journal
    return {
        "scenario": scenario.model_dump(mode="json"),
        "agents": {
            "total": len(world.members),
            "by_role": dict(sorted(by_role.items())),
            "dishonest": dict(sorted(behaviours.items())),
            "vanished": sum(
                1
                for a in world.agents.values()
                if isinstance(a, Solver) and a.config.vanish and a.jobs
            ),
        },
        "jobs": {
            **final,
            "total": len(ledger.jobs),
            "given_up": sum(
                1
                for a in world.agents.values()
                if isinstance(a, Submitter)
                for t in a.tickets
                if t.status == "refunded"
            ),
        },
        "cheats": cheats,
        "disputes": outcomes["disputes"],
        "honest_stake_lost": outcomes["honest_stake_lost"],
        "latency_s": latency_stats(outcomes["latencies"]),
        "tokens": token_flows(ledger),
        "bus": {
            "frames_by_type": dict(sorted(collector.traffic.snapshot().items())),
            "rejected": {k: v for k, v in sorted(totals.items()) if k.startswith("rejected.")},
            "dropped": {k: v for k, v in sorted(totals.items()) if k.startswith("dropped.")},
            "handler_errors": totals.get("handler_errors", 0),
            "task_errors": totals.get("task_errors", 0),
            "spam_sent": journal.spam_sent,
        },
        "network": {
            "delivered": network.stats.delivered,
            "lost": network.stats.lost,
            "partitioned": network.stats.partitioned,
            "dropped_full": network.stats.dropped_full,
        },
        "chain": {"blocks": collector.blocks, "events": collector.events},
        "conservation": conservation,
        "checks": {
            "every_cheat_caught_when_checked": cheats["missed_when_checked"] == 0
            and cheats["caught_when_checked"] == cheats["checked_by_honest"],
            "honest_stake_lost_zero": outcomes["honest_stake_lost"] == 0,
            "conserved": all(conservation.values()),
        },
    }

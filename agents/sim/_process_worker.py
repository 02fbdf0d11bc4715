"""One worker OS process of ``axl swarm simulate --processes N`` (see :mod:`._processes`):
hosts its share of the agents — library market roles, each with its own libp2p host and
chain account — until SIGTERM, then writes its runtime counters next to its plan.

    python -m agents.sim._process_worker PLAN.json
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import trio

from axl import PeerId
from compute import SGD, Cheat, MLPModel, TaskSpec
from coordination import AddressBook, Chain, CoordinationError

from .._agent import Agent
from .._runtime import AgentRuntime
from .._wiring import libp2p_transport
from ..market import (
    TOKEN,
    Referee,
    RefereeConfig,
    Solver,
    SolverConfig,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
    Verifier,
    VerifierConfig,
    VerifyPolicy,
)
from ._processes import Member
from ._scenario import Scenario


class ArrivingSubmitter(Submitter):
    """A submitter that posts the scenario's jobs as they arrive: a Poisson process of
    ``jobs.rate_per_hour`` for ``duration`` wall seconds, sizes drawn from ``jobs.steps``,
    all from its own seeded stream."""

    def __init__(self, config: SubmitterConfig, name: str, scenario: Scenario) -> None:
        super().__init__(config, name)
        self.scenario = scenario

    async def on_start(self) -> None:
        await super().on_start()
        self.start_soon(self._arrivals)

    async def _arrivals(self) -> None:
        jobs = self.scenario.jobs
        rng = random.Random(f"axl-processes/{self.scenario.seed}/{self.name}")
        rate = jobs.rate_per_hour / 3600
        start, t = trio.current_time(), 0.0
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= self.scenario.duration:
                return
            await trio.sleep_until(start + t)
            model = MLPModel(in_dim=4, hidden=(jobs.hidden,), classes=2)
            steps, seed = rng.randint(*jobs.steps), rng.randrange(2**31)
            spec = TaskSpec(model=model, optimizer=SGD(), steps=steps, batch_size=2, seed=seed,
                            checkpoint_interval=1)  # fmt: skip
            try:
                await self.submit([spec])
            except CoordinationError as exc:
                self.log.warning("posting a job failed: %s", exc)


def build(member: Member, scenario: Scenario, referee: str) -> Agent:
    """The library role of ``member`` with the scenario's settings."""
    jobs, market = scenario.jobs, scenario.market
    payment = jobs.payment * TOKEN
    sample_bps = round(jobs.verify_rate * 10_000)
    if member.role == "submitter":
        timeouts = TimeoutPolicy(commit_timeout=max(1, int(jobs.deadline)))
        config = SubmitterConfig(
            payment=payment, timeouts=timeouts, sample_bps=sample_bps, settle_grace=5
        )
        return ArrivingSubmitter(config, member.name, scenario)
    if member.role == "solver":
        kind = member.behaviour.removeprefix("cheat:")
        return Solver(
            SolverConfig(
                stake=2 * max(100 * TOKEN, payment),  # one lock per job it may hold
                offer_interval=5.0,
                cheat=Cheat(kind) if member.behaviour.startswith("cheat:") else None,  # type: ignore[arg-type]
                vanish=member.behaviour == "vanishing",
            ),
            member.name,
        )
    if member.role == "verifier":
        salt = hashlib.sha256(f"{scenario.seed}/{member.name}".encode()).digest()
        return Verifier(
            VerifierConfig(
                policy=VerifyPolicy(sample_bps, salt),
                stake=2_000 * TOKEN,  # one lock per attested job in its window
                referee=PeerId.from_string(referee),
                false_alarm=member.behaviour == "false_accuser",
            ),
            member.name,
        )
    return Referee(
        RefereeConfig(query_timeout=market.query_timeout, game_timeout=market.game_patience),
        member.name,
    )


def main(path: Path) -> None:
    from eth_account import Account

    plan: dict[str, Any] = json.loads(path.read_text())
    scenario = Scenario.parse(plan["scenario"])
    book = AddressBook.load(plan["book"])
    runtime = AgentRuntime(
        transport=libp2p_transport(listen=["/ip4/127.0.0.1/tcp/0"], bootstrap=[plan["bootstrap"]]),
        seed=f"axl-sim-{scenario.seed}".encode(),
    )
    for raw in plan["members"]:
        member = Member(**raw)
        chain = Chain.connect(plan["rpc"], Account.from_key(member.key)).with_address_book(book)
        runtime.add(build(member, scenario, plan["referee"]), chain=chain)
    runtime.serve(ready=lambda: print("ready", flush=True))
    counters = path.with_suffix(".counters.json")
    counters.write_text(json.dumps(runtime.totals()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

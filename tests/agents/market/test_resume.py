"""The roles' restart hooks: :meth:`Solver.resume` takes back only its own live jobs and never
commits a committed one again; :meth:`Submitter.resume` escrows each spec once."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import trio

from agents import AgentRuntime
from agents.market import (
    BatchPolicy,
    LocalMarket,
    Solver,
    SolverConfig,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
    game_id,
)
from compute import SGD, MLPModel, TaskSpec


class _Fast(TypedDict):
    poll_interval: float
    commits: BatchPolicy


FAST: _Fast = {"poll_interval": 0.1, "commits": BatchPolicy(4, 0.2)}
TIMEOUTS = TimeoutPolicy(bid_window=0.1, commit_timeout=3_600)


def spec(seed: int) -> TaskSpec:
    return TaskSpec(model=MLPModel(), optimizer=SGD(), steps=4, batch_size=4, seed=seed,
                    checkpoint_interval=1)  # fmt: skip


async def test_solver_resume_rebuilds_a_committed_job_and_skips_foreign_ones(
    tmp_path: Path,
) -> None:
    market = LocalMarket.create(seed=b"resume-hooks")
    submitter = market.add(Submitter(SubmitterConfig(timeouts=TIMEOUTS, poll_interval=0.1)))
    wallet = market.wallet("solver0")
    async with market.runtime:
        first = AgentRuntime(network=market.runtime.network, data_dir=tmp_path)
        solver = first.add(Solver(SolverConfig(**FAST), "solver0"), chain=wallet)
        async with first:
            (ticket,) = await submitter.submit([spec(1)])
            with trio.fail_after(60):
                while ticket.status != "committed":
                    await trio.sleep(0.05)
        (foreign,) = await submitter.submit([spec(2)])  # posted, nobody's
        # a restart: a new solver on the same account, told about both jobs
        second = AgentRuntime(network=market.runtime.network, data_dir=tmp_path)
        again = second.add(Solver(SolverConfig(**FAST), "solver0"), chain=wallet)
        async with second:
            live = await again.resume({ticket.job_id: spec(1), foreign.job_id: spec(2)})
            assert live == [ticket.job_id]
            with trio.fail_after(60):
                while game_id(ticket.job_id) not in again.parties:
                    await trio.sleep(0.05)
            assert await again.resume({ticket.job_id: spec(1)}) == []  # already held
    assert solver.stats.snapshot()["market.committed"] == 1
    stats = again.stats.snapshot()
    assert stats["market.rebuilt"] == 1 and "market.committed" not in stats
    commits = [e for e in market.chain.events() if e.name in ("ResultCommitted", "BatchCommitted")]
    assert len(commits) == 1


async def test_submitter_resume_escrows_each_spec_once() -> None:
    market = LocalMarket.create(seed=b"resume-submitter")
    first = market.add(Submitter(SubmitterConfig(timeouts=TIMEOUTS), "submitter"))
    async with market.runtime:
        await first.resume([spec(1), spec(2)])
        tickets = await first.resume([spec(2), spec(3)])  # spec(2) again: adopted
    assert [t.spec.seed for t in tickets] == [2, 3]
    assert tickets[0].job_ids == first.tickets[1].job_ids
    assert first.stats.snapshot()["market.adopted"] == 1
    posted = [e for e in market.chain.events() if e.name == "JobsPosted"]
    assert sum(len(e["specHashes"]) for e in posted) == 3

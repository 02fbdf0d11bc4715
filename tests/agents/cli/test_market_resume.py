"""Restart safety of ``axl run``'s market adapters, in one process (memory transport, embedded
chain): a submitter that crashed after escrowing adopts its jobs from the chain instead of
escrowing them again, and they end paid exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import trio


async def test_a_restarted_submitter_adopts_its_escrowed_jobs() -> None:
    from agents import AgentRuntime
    from agents.cli._market import ResumingSolver, ResumingSubmitter
    from agents.market import (
        BatchPolicy,
        LocalMarket,
        SolverConfig,
        SubmitterConfig,
        TimeoutPolicy,
    )
    from compute import SGD, MLPModel, TaskSpec

    specs = [
        TaskSpec(model=MLPModel(), optimizer=SGD(), steps=4, batch_size=4, seed=seed,
                 checkpoint_interval=1)
        for seed in range(3)
    ]  # fmt: skip
    config = SubmitterConfig(
        timeouts=TimeoutPolicy(bid_window=0.1, commit_timeout=3_600), poll_interval=0.1
    )
    first = LocalMarket.create(seed=b"resume")
    crashed = first.add(ResumingSubmitter(config, specs, "submitter"))
    async with first.runtime:  # no solver: the jobs stay escrowed, then the process "dies"
        with trio.fail_after(30):
            while crashed.stats.snapshot().get("market.posted", 0) < len(specs):
                await trio.sleep(0.05)
    chain = first.chain
    posted = [e for e in chain.events() if e.name == "JobsPosted"]
    assert sum(len(e["specHashes"]) for e in posted) == len(specs)

    runtime = AgentRuntime(seed=b"resume")  # the same identities: a restart
    second = LocalMarket(chain, runtime, first.seed, first.wallets)
    again = ResumingSubmitter(config, specs, "submitter")
    runtime.add(again, chain=first.wallets["submitter"])  # the same account
    second.add(
        ResumingSolver(SolverConfig(poll_interval=0.1, commits=BatchPolicy(4, 0.2)), "solver0")
    )
    async with runtime:
        with trio.fail_after(120):
            while len(again.tickets) < len(specs):
                await trio.sleep(0.05)
            await second.drive(again.tickets)
    stats = again.stats.snapshot()
    assert stats.get("market.adopted") == len(specs)
    assert stats.get("market.posted", 0) == 0  # nothing escrowed twice
    events = chain.events()
    assert sum(len(e["specHashes"]) for e in events if e.name == "JobsPosted") == len(specs)
    settled = Counter(int(e["jobId"]) for e in events if e.name == "JobSettled")
    assert len(settled) == len(specs) and set(settled.values()) == {1}
    assert {t.status for t in again.tickets} == {"paid"}


async def test_a_restarted_solver_resumes_its_assigned_job(tmp_path: Path) -> None:
    from agents import AgentRuntime
    from agents.cli._market import ResumingSolver
    from agents.market import (
        BatchPolicy,
        LocalMarket,
        SolverConfig,
        Submitter,
        SubmitterConfig,
        TimeoutPolicy,
    )
    from compute import SGD, MLPModel, TaskSpec

    spec = TaskSpec(model=MLPModel(), optimizer=SGD(), steps=4, batch_size=4, seed=7,
                    checkpoint_interval=1)  # fmt: skip
    market = LocalMarket.create(seed=b"solver")
    submitter = market.add(
        Submitter(
            SubmitterConfig(
                timeouts=TimeoutPolicy(bid_window=0.1, commit_timeout=3_600), poll_interval=0.1
            ),
            "submitter",
        )
    )
    wallet = market.wallet("solver0")

    def fast(*, vanish: bool = False) -> SolverConfig:
        return SolverConfig(poll_interval=0.1, commits=BatchPolicy(4, 0.2), vanish=vanish)

    def solver_runtime(config: SolverConfig) -> tuple[AgentRuntime, ResumingSolver]:
        runtime = AgentRuntime(network=market.runtime.network, data_dir=tmp_path)
        return runtime, runtime.add(ResumingSolver(config, "solver0"), chain=wallet)

    async with market.runtime:
        first, taker = solver_runtime(fast(vanish=True))  # takes, never trains
        async with first:
            (ticket,) = await submitter.submit([spec])
            with trio.fail_after(30):
                while not taker.jobs:
                    await trio.sleep(0.05)
        # the solver process is gone with the job assigned to it on chain
        second, resumed = solver_runtime(fast())
        async with second:
            with trio.fail_after(60):
                while not resumed.stats.snapshot().get("market.committed"):
                    await trio.sleep(0.05)
            await market.drive([ticket])
    assert resumed.stats.snapshot()["market.resumed"] == 1
    assert ticket.status == "paid" and len(ticket.job_ids) == 1  # the same job, not a repost
    events = market.chain.events()
    commits = [e for e in events if e.name in ("ResultCommitted", "BatchCommitted")]
    assert len(commits) == 1
    assert sum(e.name == "JobSettled" for e in events) == 1

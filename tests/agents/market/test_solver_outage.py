"""A solver keeps defending its batched results through a chain outage: an unrevealed leaf
loses its dispute, so a failed poll or reveal must be tried again, not end the watch."""

from __future__ import annotations

from typing import Any

import trio

from agents.market import (
    TOKEN,
    BatchPolicy,
    LocalMarket,
    Solver,
    SolverConfig,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
)
from coordination import ChainUnavailable, Role

from .conftest import tiny_spec


def failing(method: Any, times: int, counter: list[int]) -> Any:
    """``method``, raising ChainUnavailable on its first ``times`` calls."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        if counter[0] <= times:
            raise ChainUnavailable("the node does not answer (test)")
        return await method(*args, **kwargs)

    return wrapper


async def test_a_solver_reveals_its_challenged_leaf_after_the_chain_comes_back() -> None:
    market = LocalMarket.create(seed=b"solver-outage")
    timeouts = TimeoutPolicy(bid_window=0.1, commit_timeout=3_600)
    submitter = market.add(Submitter(SubmitterConfig(timeouts=timeouts, poll_interval=0.1)))
    config = SolverConfig(poll_interval=0.1, commits=BatchPolicy(2, 5.0))
    solver = market.add(Solver(config, "solver0"))
    challenger = market.wallet("challenger")
    challenger.stake(Role.VERIFIER, 100 * TOKEN)
    polls, reveals = [0], [0]
    async with market.runtime:
        tickets = await submitter.submit([tiny_spec(1), tiny_spec(2)])
        with trio.fail_after(60):
            while any(t.status != "committed" for t in tickets):
                await trio.sleep(0.05)
        job_id = tickets[0].job_id
        commitment = solver.jobs[job_id].commitment
        assert commitment is not None
        assert commitment.batch_id  # batched: the leaf must be revealed
        # the node goes away: the next polls fail, and so does the first reveal
        solver.market.poll = failing(solver.market.poll, 3, polls)  # type: ignore[method-assign]
        solver.market.reveal = failing(solver.market.reveal, 1, reveals)  # type: ignore[method-assign]
        with trio.fail_after(30):
            while polls[0] <= 3:
                await trio.sleep(0.05)
        challenger.challenge(job_id, b"\x13" * 32)
        with trio.fail_after(30):
            while not market.chain.dispute(job_id).revealed:
                await trio.sleep(0.05)
    stats = solver.stats.snapshot()
    assert stats["market.chain_errors"] >= 3
    assert stats["market.reveal_failed"] == 1
    assert stats["market.revealed"] == 1
    assert reveals[0] == 2

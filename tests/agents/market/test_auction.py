"""The submitter's auction counts bids that arrive before its task starts: a fast solver's
bid can beat the auction task to the event loop, and solvers bid once per job."""

from __future__ import annotations

from typing import Any

import trio

from agents.market import (
    LocalMarket,
    Solver,
    SolverConfig,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
)

from .conftest import tiny_spec


async def test_bids_that_arrive_before_the_auction_opens_are_assigned() -> None:
    market = LocalMarket.create(seed=b"early-bids")
    timeouts = TimeoutPolicy(bid_window=0.05, commit_timeout=3_600)
    submitter = market.add(Submitter(SubmitterConfig(timeouts=timeouts), "submitter"))
    market.add(Solver(SolverConfig(poll_interval=0.1), "solver0"))
    opened = submitter._auction

    async def late_auction(ticket: Any, job_id: int) -> None:
        """The auction task runs only once the solver's bid is in (the race, made certain)."""
        with trio.fail_after(30):
            while not submitter._bids.get(job_id):
                await trio.sleep(0.01)
        await opened(ticket, job_id)

    submitter._auction = late_auction  # type: ignore[method-assign]
    async with market.runtime:
        (ticket,) = await submitter.submit([tiny_spec(1)])
        with trio.fail_after(30):
            while ticket.status == "posted":
                await trio.sleep(0.05)
    assert ticket.status in ("assigned", "committed")
    assert submitter.stats.snapshot()["market.assigned"] == 1

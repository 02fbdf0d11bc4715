"""Throughput of the compute market: tiny training jobs through the library roles on the
memory transport and the embedded chain, against training alone.

For 10, 100 and 1,000 jobs (``--jobs``): one submitter, four solvers (capacity 4), one
verifier re-running a 10 % sample, one referee; every job is posted, auctioned, assigned,
trained, anchored in batches, sampled, and settled in batches after the challenge window
(chain time is moved on whenever the market is quiet). Reported per size:

- jobs settled per second of wall time (from the first post to the last settlement);
- the share of that time spent in chain calls (every role's ``MarketChain``), training (the
  solvers' and the verifier's runs, in worker threads) and the bus and roles (the event
  loop's busy time less the chain calls, measured with a trio instrument); shares of
  threaded training may overlap the rest;
- the anchor: training the same jobs alone, one after another, with no market; and the ratio
  market wall time / training alone (1.0 would be a free market).

    python -m benchmarks.market [--jobs 10 100 1000] [--quick]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import trio

from agents.market import (
    LOCAL_PARAMS,
    TOKEN,
    BatchPolicy,
    LocalMarket,
    Referee,
    Solver,
    SolverConfig,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
    Verifier,
    VerifierConfig,
    VerifyPolicy,
)
from compute import SGD, Dataset, MLPModel, Party, TaskSpec

from ._report import line, now


def tiny(seed: int) -> TaskSpec:
    return TaskSpec(
        model=MLPModel(), optimizer=SGD(), steps=2, batch_size=2, seed=seed, checkpoint_interval=1
    )


class LoopBusy(trio.abc.Instrument):
    """Sums the time the event loop spends running task steps."""

    def __init__(self) -> None:
        self.busy = 0.0
        self._start = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._start = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self.busy += time.perf_counter() - self._start


class TimedSolver(Solver):
    trained = 0.0

    def train(self, spec: TaskSpec, dataset: Dataset | None = None) -> Party:
        start = time.perf_counter()
        try:
            return super().train(spec, dataset)
        finally:
            TimedSolver.trained += time.perf_counter() - start


class TimedVerifier(Verifier):
    rerun_s = 0.0

    def rerun(self, spec: TaskSpec, dataset: Dataset | None = None) -> Party:
        start = time.perf_counter()
        try:
            return super().rerun(spec, dataset)
        finally:
            TimedVerifier.rerun_s += time.perf_counter() - start


@dataclass
class Result:
    jobs: int
    wall: float
    chain: float
    training: float
    loop: float
    floor: float


async def market_run(jobs: int, instrument: LoopBusy) -> Result:
    TimedSolver.trained = TimedVerifier.rerun_s = 0.0
    # Each job locks max(min_solver_stake, payment) of its solver's stake until it settles:
    # 1 AI jobs, so 1,000 AI of stake lets a solver hold 1,000 jobs open.
    params = LOCAL_PARAMS.model_copy(update={"min_solver_stake": TOKEN})
    market = LocalMarket.create(params=params, seed=b"bench")
    fast = TimeoutPolicy(bid_window=0.05, commit_timeout=100_000)
    config = SubmitterConfig(payment=TOKEN, timeouts=fast, sample_bps=0, poll_interval=0.2)
    submitter = market.add(Submitter(config, "submitter"), tokens=(jobs + 10) * TOKEN)
    for i in range(4):
        solver_config = SolverConfig(
            capacity=4, commits=BatchPolicy(32, 0.2), poll_interval=0.2, stake=1_000 * TOKEN
        )
        market.add(TimedSolver(solver_config, f"solver{i}"), tokens=2_000 * TOKEN)
    market.add(TimedVerifier(VerifierConfig(policy=VerifyPolicy(1_000, b"bench")), "verifier"))
    market.add(Referee())
    async with market.runtime:
        loop_before = instrument.busy
        chain_before = sum(role.market.busy for role in market.roles())  # binds and stakes
        start = now()
        tickets = await submitter.submit([tiny(seed) for seed in range(jobs)])
        await market.drive(tickets)
        wall = now() - start
        loop = instrument.busy - loop_before
        chain = sum(role.market.busy for role in market.roles()) - chain_before
    if not all(t.status == "paid" for t in tickets):
        raise AssertionError("every job must be paid")
    training = TimedSolver.trained + TimedVerifier.rerun_s
    start = now()
    for seed in range(jobs):
        Party("a", tiny(seed))
    floor = now() - start
    return Result(jobs, wall, chain, training, loop, floor)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--quick", action="store_true", help="10 jobs only")
    args = parser.parse_args(argv)
    sizes = [10] if args.quick else args.jobs
    instrument = LoopBusy()
    print("market: tiny jobs (MLP, 2 steps) on the memory transport and the embedded chain")
    for jobs in sizes:
        result = trio.run(market_run, jobs, instrument, instruments=[instrument])
        print(f"{jobs} jobs")
        print(line("jobs settled per second", jobs / result.wall, "jobs/s"))
        print(line("wall time", result.wall, "s"))
        print(line("share in chain calls", 100 * result.chain / result.wall, "%"))
        print(line("share in training (threads)", 100 * result.training / result.wall, "%"))
        bus = max(0.0, result.loop - result.chain)
        print(line("share in the bus and roles (event loop)", 100 * bus / result.wall, "%"))
        print(line("anchor: training alone, jobs per second", jobs / result.floor, "jobs/s"))
        print(line("ratio market wall / training alone", result.wall / result.floor, "x"))


if __name__ == "__main__":
    main()

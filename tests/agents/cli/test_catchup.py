"""A verifier that missed a job's commitment on the topic (it joined late, or was cut off)
catches up from the chain's commit events by asking the solver, and checks it; a solver that
answers with another spec gets nothing attested (in one process: memory network, embedded
chain)."""

from __future__ import annotations

from pathlib import Path

import trio

from agents.cli._catchup import CommitmentRequest, JobCommitment
from agents.cli._market import ResumingSolver, StatusVerifier
from agents.market import (
    BatchPolicy,
    LocalMarket,
    SolverConfig,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
    VerifierConfig,
    VerifyPolicy,
)
from axl import Context
from compute import SGD, MLPModel, TaskSpec


def spec(seed: int) -> TaskSpec:
    return TaskSpec(model=MLPModel(), optimizer=SGD(), steps=4, batch_size=4, seed=seed,
                    checkpoint_interval=1)  # fmt: skip


class LyingSolver(ResumingSolver):
    """Answers catch-up requests with another job's spec."""

    async def commitment_request(self, message: CommitmentRequest, ctx: Context) -> JobCommitment:
        answer = await super().commitment_request(message, ctx)
        return answer.model_copy(update={"spec": spec(99).model_dump_json()})


async def run(solver_class: type[ResumingSolver], tmp_path: Path) -> dict[str, int]:
    market = LocalMarket.create(seed=b"catch-up")
    submitter = market.add(
        Submitter(SubmitterConfig(timeouts=TimeoutPolicy(bid_window=0.1), poll_interval=0.1))
    )
    fast = SolverConfig(poll_interval=0.1, commits=BatchPolicy(1, 0.1))
    market.add(solver_class(fast, "solver0"))
    config = VerifierConfig(policy=VerifyPolicy(10_000, b"salt"))
    verifier = market.add(StatusVerifier(config, "verifier"))
    verifier.catch_up_interval = 0.2
    network = market.runtime.network
    assert network is not None
    async with market.runtime:
        network.partition([verifier.peer_id])  # it misses the job on the topic
        (ticket,) = await submitter.submit([spec(1)])
        with trio.fail_after(60):
            while ticket.status != "committed":
                await trio.sleep(0.05)
        assert ticket.job_id not in verifier.seen
        network.heal()
        with trio.fail_after(60):
            while not (
                verifier.stats.snapshot().get("market.attested")
                or verifier.stats.snapshot().get("market.spec_mismatch")
            ):
                await trio.sleep(0.05)
        return verifier.stats.snapshot()


async def test_a_late_verifier_catches_up_and_attests(tmp_path: Path) -> None:
    stats = await run(ResumingSolver, tmp_path)
    assert stats["market.caught_up"] == 1 and stats["market.attested"] == 1


async def test_a_lying_solver_gets_nothing_attested(tmp_path: Path) -> None:
    stats = await run(LyingSolver, tmp_path)
    assert stats["market.spec_mismatch"] == 1
    assert stats.get("market.attested", 0) == 0 and stats.get("market.caught_up", 0) == 0

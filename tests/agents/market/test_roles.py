"""Role mechanics in isolation: the referee's trust checks against a stubbed chain record,
the outcome mapping, and chain calls kept off the event loop on a remote node."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import trio

from agents.market import Challenge, DisputeRecord, MarketChain, Referee, outcome_of
from axl import Identity
from compute import Verdict as GameVerdict

from .conftest import tiny_spec

SOLVER, CHALLENGER, STRANGER = (Identity.from_seed(bytes([i]) * 32).peer_id for i in (1, 2, 3))
SPEC = tiny_spec(1)


class FakeMarket:
    """Answers ``dispute()`` with a fixed chain record and records ``resolve()`` calls."""

    def __init__(self, record: DisputeRecord | None) -> None:
        self.record = record
        self.resolved: list[tuple[int, str]] = []

    async def dispute(self, job_id: int) -> DisputeRecord | None:
        return self.record

    async def resolve(self, job_id: int, outcome: str) -> int:
        self.resolved.append((job_id, outcome))
        return 0


def _record(spec_hash: bytes) -> DisputeRecord:
    return DisputeRecord(
        job_id=5,
        solver="0x" + "01" * 20,
        challenger="0x" + "02" * 20,
        solver_peer=SOLVER,
        challenger_peer=CHALLENGER,
        solver_root=bytes(32),
        challenger_root=None,
        spec_hash=spec_hash,
    )


def _referee(market: FakeMarket) -> tuple[Referee, list[Any]]:
    referee = Referee()
    referee._market = market  # type: ignore[assignment]
    started: list[Any] = []
    referee.start_soon = lambda fn, *args: started.append((fn, args))  # type: ignore[method-assign]
    return referee, started


def _challenge(spec: str) -> Challenge:
    return Challenge(job_id=5, challenger_root=b"\x01" * 32, spec=spec)


async def test_a_challenge_from_anyone_but_the_chain_challenger_is_ignored() -> None:
    referee, started = _referee(FakeMarket(_record(bytes.fromhex(SPEC.task_id))))
    for sender in (STRANGER, SOLVER):
        await referee.challenge(_challenge(SPEC.model_dump_json()), SimpleNamespace(sender=sender))
    assert started == []
    assert referee.stats.snapshot()["market.challenges_ignored"] == 2
    await referee.challenge(_challenge(SPEC.model_dump_json()), SimpleNamespace(sender=CHALLENGER))
    assert len(started) == 1  # the chain's challenger is heard, once
    await referee.challenge(_challenge(SPEC.model_dump_json()), SimpleNamespace(sender=CHALLENGER))
    assert len(started) == 1


async def test_a_challenge_of_a_job_not_disputed_on_chain_is_ignored() -> None:
    referee, started = _referee(FakeMarket(None))
    await referee.challenge(_challenge(SPEC.model_dump_json()), SimpleNamespace(sender=CHALLENGER))
    assert started == [] and referee.stats.snapshot()["market.challenges_ignored"] == 1


async def test_a_challenger_whose_spec_is_not_the_chains_loses() -> None:
    market = FakeMarket(_record(bytes.fromhex(SPEC.task_id)))
    referee, _ = _referee(market)
    referee.publish = _noop  # type: ignore[method-assign]
    other = tiny_spec(2).model_dump_json()
    for spec in (other, "not json", "{}"):
        market.resolved.clear()
        await referee._referee(market.record, _challenge(spec))  # type: ignore[arg-type]
        assert market.resolved == [(5, "solver_wins")]


async def _noop(*args: object) -> None:
    return None


def test_outcomes() -> None:
    def verdict(winner: str | None, losers: list[str]) -> GameVerdict:
        return GameVerdict(game_id="g", winner=winner, losers=losers, reason="r", rounds=1)

    assert outcome_of(verdict("a", ["b"])) == "solver_wins"
    assert outcome_of(verdict("b", ["a"])) == "challenger_wins"
    assert outcome_of(verdict(None, ["a", "b"])) == "challenger_wins"  # the submitter is safe
    assert outcome_of(verdict(None, [])) == "no_dispute"


async def test_chain_calls_to_a_remote_node_run_in_worker_threads() -> None:
    """A slow node must not stall the event loop: other tasks run while a call waits."""
    release = threading.Event()
    threads: list[str] = []

    def block_timestamp() -> int:
        threads.append(threading.current_thread().name)
        release.wait(10)
        return 42

    class Node:  # what MarketChain.now() touches of a Chain on an RPC node
        pass

    remote = SimpleNamespace(kind="rpc", w3=Node(), block_timestamp=block_timestamp)
    market = MarketChain(remote)  # type: ignore[arg-type]
    assert market.threaded
    ticks = 0
    async with trio.open_nursery() as nursery:

        async def call() -> None:
            assert await market.now() == 42

        nursery.start_soon(call)
        while ticks < 20:  # the loop keeps running while the call blocks in its thread
            await trio.sleep(0.001)
            ticks += 1
        release.set()
    assert threads and threads[0] != threading.main_thread().name
    assert market.calls == 1


async def test_a_verifier_never_challenges_over_a_spec_that_is_not_the_chains() -> None:
    """A submitter announcing a different spec than it escrowed must not get honest
    verifiers to challenge (and lose their stake against) an honest solver."""
    from agents.market import ResultCommitted, Verifier
    from agents.market._verifier import _Seen

    announced, escrowed = tiny_spec(1), tiny_spec(2)
    challenges: list[int] = []

    class Market:
        async def job(self, job_id: int) -> Any:
            return SimpleNamespace(spec_hash=bytes.fromhex(escrowed.task_id))

        async def challenge(self, job_id: int, root: bytes, proof: Any) -> None:
            challenges.append(job_id)

    verifier = Verifier()
    verifier._market = Market()  # type: ignore[assignment]
    commitment = ResultCommitted(job_id=3, root=b"\x07" * 32, batch_id=0, challenge_end=1)
    verifier.seen[3] = _Seen(announced, 10_000, commitment)
    await verifier._check(3)
    assert verifier.checked == {3: False}
    assert challenges == [] and verifier.stats.snapshot()["market.spec_mismatch"] == 1

"""Role mechanics in isolation: the referee's trust checks against a stubbed chain record,
the outcome mapping and vote rule, and chain calls kept off the event loop on a remote node."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, cast

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import Context
from agents.market import (
    CaseOutcome,
    Challenge,
    DisputeRecord,
    MarketChain,
    Referee,
    outcome_of,
    vote_of,
)
from axl import Identity, PeerId
from compute import Verdict as GameVerdict

from .conftest import tiny_spec

SOLVER, CHALLENGER, STRANGER = (Identity.from_seed(bytes([i]) * 32).peer_id for i in (1, 2, 3))
SPEC = tiny_spec(1)


class FakeMarket:
    """Answers the referee's chain reads from a fixed record (None: nobody challenged)."""

    def __init__(self, record: DisputeRecord | None) -> None:
        self.record = record
        self.votes: list[tuple[int, bool]] = []

    async def job(self, job_id: int) -> Any:
        return SimpleNamespace(challenge_end=100)

    async def challengers(self, job_id: int) -> list[str]:
        return [] if self.record is None else [self.record.challenger]

    async def bound_to(self, address: str, peer: Any) -> bool:
        return self.record is not None and peer == self.record.challenger_peer

    async def dispute(self, job_id: int, challenger: str) -> DisputeRecord | None:
        return self.record


def _record(spec_hash: bytes) -> DisputeRecord:
    return DisputeRecord(
        job_id=5,
        solver="0x" + "01" * 20,
        challenger="0x" + "02" * 20,
        solver_peer=SOLVER,
        challenger_peer=CHALLENGER,
        solver_root=bytes(32),
        challenger_root=b"\x01" * 32,
        spec_hash=spec_hash,
        end=4_000,
    )


def _referee(market: FakeMarket) -> tuple[Referee, list[Any]]:
    referee = Referee()
    referee._market = market  # type: ignore[assignment]
    started: list[Any] = []
    referee.start_soon = lambda fn, *args: started.append((fn, args))  # type: ignore[method-assign]
    return referee, started


def _ctx(sender: PeerId) -> Context:
    """The one field of a handler's context that ``Referee.challenge`` reads."""
    return cast(Context, SimpleNamespace(sender=sender))


def _challenge(spec: str) -> Challenge:
    return Challenge(job_id=5, challenger_root=b"\x01" * 32, spec=spec)


async def test_a_challenge_from_anyone_but_a_chain_challenger_is_ignored() -> None:
    referee, started = _referee(FakeMarket(_record(bytes.fromhex(SPEC.task_id))))
    for sender in (STRANGER, SOLVER):
        await referee.challenge(_challenge(SPEC.model_dump_json()), _ctx(sender))
    assert started == []
    assert referee.stats.snapshot()["market.challenges_ignored"] == 2
    await referee.challenge(_challenge(SPEC.model_dump_json()), _ctx(CHALLENGER))
    assert len(started) == 1  # the chain's challenger is heard, once
    await referee.challenge(_challenge(SPEC.model_dump_json()), _ctx(CHALLENGER))
    assert len(started) == 1


async def test_a_challenge_of_a_job_not_disputed_on_chain_is_ignored() -> None:
    referee, started = _referee(FakeMarket(None))
    await referee.challenge(_challenge(SPEC.model_dump_json()), _ctx(CHALLENGER))
    assert started == [] and referee.stats.snapshot()["market.challenges_ignored"] == 1


async def test_a_challenger_whose_spec_is_not_the_chains_loses_its_case() -> None:
    market = FakeMarket(_record(bytes.fromhex(SPEC.task_id)))
    referee, _ = _referee(market)
    other = tiny_spec(2).model_dump_json()
    for spec in (other, "not json", "{}"):
        assert market.record is not None
        assert await referee._judge(market.record, _challenge(spec)) == "solver_wins"


def test_outcomes() -> None:
    def verdict(outcome: str, winner: str | None, losers: list[str]) -> GameVerdict:
        return GameVerdict(
            game_id="g", outcome=outcome, winner=winner, losers=losers, reason="r", rounds=1
        )

    assert outcome_of(verdict("decided", "a", ["b"])) == "solver_wins"
    assert outcome_of(verdict("decided", "b", ["a"])) == "challenger_wins"
    assert outcome_of(verdict("both_lost", None, ["a", "b"])) == "both_lost"
    assert outcome_of(verdict("no_dispute", None, [])) == "no_dispute"


@given(
    st.lists(
        st.sampled_from(
            [None, "solver_wins", "challenger_wins", "no_dispute", "both_lost", "undecided"]
        ),
        max_size=4,
    ),
    st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_the_vote_follows_decided_games_and_equal_roots_never_cost_the_solver(
    cases: list[CaseOutcome | None], window_closed: bool
) -> None:
    vote = vote_of(cases, window_closed)
    if "challenger_wins" in cases:
        assert vote is False  # one won game is enough against the solver
    elif vote is not None:  # for the solver only when every case ended, after the window
        assert vote and window_closed and None not in cases
        assert "solver_wins" in cases or "no_dispute" in cases
    if set(cases) <= {"both_lost", "undecided"}:
        assert vote is None  # no vote: Undecided, the submitter refunded, every lock returns
    if cases and set(cases) <= {"solver_wins", "no_dispute"} and window_closed:
        assert vote is True  # equal roots dispute nothing: the honest solver keeps its pay


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
        async def spec_hash_of(self, job_id: int) -> bytes:
            return bytes.fromhex(escrowed.task_id)

        async def challenge(self, job_id: int, root: bytes) -> int:
            challenges.append(job_id)
            return 0

    verifier = Verifier()
    verifier._market = Market()  # type: ignore[assignment]
    commitment = ResultCommitted(job_id=3, root=b"\x07" * 32, batch_id=0, challenge_end=1)
    verifier.seen[3] = _Seen(announced, 10_000, commitment)
    await verifier._check(3)
    assert verifier.checked == {3: False}
    assert challenges == [] and verifier.stats.snapshot()["market.spec_mismatch"] == 1

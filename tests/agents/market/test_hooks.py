"""The roles' extension hooks (what the swarm simulator's adversaries override): a solver
committing a root no run of its own backs, and a verifier vouching for what it re-ran. With
``inline_compute`` every role works on the event loop, so the market runs on trio's mock
clock."""

from __future__ import annotations

import trio
import trio.testing

from agents.market import (
    LocalMarket,
    Referee,
    Solver,
    SolverConfig,
    SolverJob,
    Submitter,
    SubmitterConfig,
    Ticket,
    TimeoutPolicy,
    Verifier,
    VerifierConfig,
    game_id,
)
from compute import Cheat, Party
from coordination import JobStatus

from .conftest import FAST, tiny_spec


class _Submitter(Submitter):
    inline_compute = True


class _Referee(Referee):
    inline_compute = True


class _Verifier(Verifier):
    inline_compute = True
    reruns = 0

    def agrees(self, job_id: int, party: Party, root: bytes) -> bool:
        self.reruns += 1
        return super().agrees(job_id, party, root)


class _Solver(Solver):
    inline_compute = True


class Copier(_Solver):
    """Commits the spec hash as its result root: nothing it ran backs it."""

    def result_root(self, job: SolverJob, party: Party) -> bytes:
        return bytes.fromhex(job.spec.task_id)


class Voucher(_Verifier):
    """Agrees with every root, whatever its re-run says."""

    def agrees(self, job_id: int, party: Party, root: bytes) -> bool:
        super().agrees(job_id, party, root)
        return True


async def _run(solver: Solver, verifier: Verifier) -> tuple[LocalMarket, Ticket, Referee]:
    market = LocalMarket.create(seed=b"hooks")
    config = SubmitterConfig(timeouts=TimeoutPolicy(bid_window=0.1, max_attempts=1), **FAST)
    submitter = market.add(_Submitter(config, "submitter"))
    market.add(solver)
    market.add(verifier)
    referee = market.add(_Referee())
    async with market.runtime:
        (ticket,) = await submitter.submit([tiny_spec(5)])
        with trio.fail_after(10_000):  # simulated seconds
            await market.drive([ticket])
    return market, ticket, referee


async def test_a_root_no_run_backs_is_challenged_and_rejected(
    autojump_clock: trio.testing.MockClock,
) -> None:
    copier = Copier(SolverConfig(**FAST), "copier")
    verifier = _Verifier(VerifierConfig(), "verifier")
    market, ticket, referee = await _run(copier, verifier)
    job = market.ledger().jobs[ticket.job_id]
    assert job.result_root == bytes.fromhex(tiny_spec(5).task_id)  # the hook's root was committed
    assert verifier.reruns == 1 and verifier.checked == {ticket.job_id: False}
    assert referee.verdicts[ticket.job_id].outcome == "challenger_wins"
    assert job.status is JobStatus.REJECTED and ticket.outcomes == ["rejected"]
    assert game_id(ticket.job_id) not in copier.parties  # it never held a run for that root


async def test_a_verifier_that_agrees_with_everything_lets_a_cheat_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cheat = _Solver(SolverConfig(cheat=Cheat("wrong_op", step=2, op=7), **FAST), "cheat")
    voucher = Voucher(VerifierConfig(), "voucher")
    market, ticket, referee = await _run(cheat, voucher)
    assert voucher.reruns == 1 and voucher.checked == {ticket.job_id: True}
    assert market.ledger().jobs[ticket.job_id].status is JobStatus.SETTLED
    assert ticket.status == "paid" and referee.verdicts == {}

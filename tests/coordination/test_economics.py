"""Settlement arithmetic and the event ledger, without a chain."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordination import (
    Action,
    ChainEvent,
    Economics,
    JobStatus,
    LedgerJob,
    MarketLedger,
    binding_message,
)

bps = st.integers(0, 10_000)
amounts = st.integers(0, 2**96)


@given(amounts, st.integers(0, 1_000), st.integers(0, 500), st.booleans())
def test_payout_conserves_the_payment(
    payment: int, fee_bps: int, verifier_bps: int, attested: bool
) -> None:
    payout = Economics(fee_bps=fee_bps, verifier_fee_bps=verifier_bps).payout(payment, attested)
    assert payout.paid + payout.fee + payout.verifier_fee == payment and payout.paid >= 0
    assert 0 <= payout.fee * 10_000 <= payment * fee_bps < (payout.fee + 1) * 10_000
    assert payout.verifier_fee == (payment * verifier_bps // 10_000 if attested else 0)


@given(amounts, amounts)
def test_a_job_lock_covers_its_payment(payment: int, minimum: int) -> None:
    lock = Economics().job_lock(payment, minimum)
    assert lock >= payment and lock >= minimum


@given(amounts, bps)
def test_slash_split_conserves_the_slash(slashed: int, share: int) -> None:
    split = Economics(reward_share_bps=share).slash_split(slashed)
    assert split.reward + split.burned == slashed and split.reward >= 0 and split.burned >= 0


def test_default_fee_is_half_a_percent() -> None:
    assert Economics().payout(10_000).fee == 50


def test_binding_message_layout() -> None:
    msg = binding_message(10, "0x" + "ab" * 20)
    assert msg == b"axl.identity.v1:" + (10).to_bytes(32, "big") + bytes.fromhex("ab" * 20)


def _event(contract: str, name: str, **args: object) -> ChainEvent:
    return ChainEvent(contract, name, args, 1, b"", 0)


def test_ledger_folds_a_job() -> None:
    ledger = MarketLedger()
    zero = "0x" + "00" * 20
    ledger.extend(
        [
            _event("AIToken", "Transfer", **{"from": zero, "to": "0xa", "value": 1000}),
            _event(
                "JobMarket",
                "JobsPosted",
                firstJobId=1,
                submitter="0xa",
                solver=zero,
                specHashes=[b"s"],
                payments=[100],
                deadline=9,
            ),
            _event("JobMarket", "JobAssigned", jobId=1, solver="0xb"),
            _event("JobMarket", "BatchCommitted", batchId=1, jobIds=[1], challengeEnd=5),
            _event("JobMarket", "JobSettled", jobId=1, paid=98, fee=1, verifierFee=1),
            _event("AIToken", "Transfer", **{"from": "0xm", "to": zero, "value": 1}),
            _event("JobMarket", "Unknown"),
        ]
    )
    job = ledger.jobs[1]
    assert (job.status, job.solver, job.batch_id) == (JobStatus.SETTLED, "0xb", 1)
    assert (ledger.escrow_held, ledger.paid, ledger.fees, ledger.supply) == (0, 98, 1, 999)
    assert ledger.verifier_fees == 1


def test_job_actions_follow_status_time_and_party() -> None:
    job = LedgerJob(1, "0xAa", 100, b"s", deadline=50)
    assert job.actions(50, "0xaa") == {Action.CANCEL, Action.ASSIGN}
    assert job.actions(51, "0xAA") == {Action.CANCEL, Action.REFUND}
    assert job.actions(10, "0xbb") == set()
    job.status, job.solver = JobStatus.ASSIGNED, "0xBb"
    assert job.actions(50, "0xbb") == {Action.COMMIT}
    assert job.actions(51, "0xbb") == {Action.REFUND}
    job.status, job.challenge_end = JobStatus.COMMITTED, 80
    assert job.actions(79, "0xcc") == {Action.CHALLENGE, Action.ATTEST}
    assert job.actions(79, "0xbb") == set()
    assert job.actions(80, "0xcc") == {Action.SETTLE}
    job.status, job.dispute_end, job.batch_id = JobStatus.DISPUTED, 90, 1
    job.challengers["0xCc"] = b"r"
    assert job.actions(79, "0xdd") == {Action.CHALLENGE, Action.REVEAL}
    assert job.actions(79, "0xcc") == {Action.REVEAL}
    job.revealed = b"x"
    assert job.actions(85, "0xdd") == {Action.VOTE}
    assert job.actions(85, "0xcc") == set() and job.actions(85, "0xaa") == set()
    assert job.actions(90, "0xcc") == {Action.FINALIZE}
    job.status = JobStatus.SETTLED
    assert job.actions(10**9, "0xaa") == set()

"""The job market through the Chain client: lifecycle, fee burn, batches and every revert."""

from __future__ import annotations

from coordination import (
    Economics,
    InsufficientStake,
    InsufficientTokens,
    JobStatus,
    Outcome,
    ResultTree,
    Role,
    Unauthorized,
)

from .conftest import Env
from .helpers import AI, h, reverts

PAY = 10 * AI


def staked(env: Env) -> Env:
    env.solver.stake(Role.SOLVER, 1_300 * AI)
    env.solver2.stake(Role.SOLVER, 100 * AI)
    env.verifier.stake(Role.VERIFIER, 100 * AI)
    return env


def test_post_assign_commit_settle_burns_the_fee(env: Env) -> None:
    staked(env)
    supply = env.admin.total_supply()
    deadline = env.now() + 1000
    receipt = env.submitter.post_job(h(1), PAY, deadline)
    job_id = receipt.value
    view = env.admin.job(job_id)
    assert (view.status, view.payment, view.deadline) == (JobStatus.POSTED, PAY, deadline)
    assert receipt.named("JobsPosted")[0]["specHashes"] == [h(1)]
    assert env.admin.balance_of(env.admin.contract("JobMarket").address) == PAY
    env.submitter.assign(job_id, env.solver.address)
    env.solver.commit_result(job_id, h(99))
    view = env.admin.job(job_id)
    assert view.status == JobStatus.COMMITTED and view.result_root == h(99)
    assert view.lock == 100 * AI and env.solver.stake_of(Role.SOLVER).locked == 100 * AI
    assert view.deadline is None and view.challenge_end == env.now() + 3600
    assert env.admin.verify_result(job_id, h(99)) and not env.admin.verify_result(job_id, h(98))
    with reverts("ChallengeWindowOpen"):
        env.outsider.settle(job_id)
    env.admin.advance_time(3600)
    before = env.solver.balance_of()
    settle = env.outsider.settle(job_id)
    payout = Economics(fee_bps=50).payout(PAY)
    assert payout.fee == PAY // 200
    assert env.solver.balance_of() - before == payout.paid
    assert env.admin.total_supply() == supply - payout.fee
    (settled,) = settle.named("JobSettled")
    assert (settled["paid"], settled["fee"]) == (payout.paid, payout.fee)
    assert settle.named("FeeBurned")[0]["amount"] == payout.fee
    assert env.admin.job(job_id).status == JobStatus.SETTLED
    assert env.solver.stake_of(Role.SOLVER).locked == 0
    with reverts("WrongStatus"):
        env.outsider.settle(job_id)


def test_post_reverts(env: Env) -> None:
    staked(env)
    now = env.now()
    with reverts("ZeroPayment"):
        env.submitter.post_job(h(1), 0, now + 100)
    with reverts("InvalidDeadline"):
        env.submitter.post_job(h(1), PAY, now)
    with reverts("InsufficientStake", InsufficientStake):
        env.submitter.post_job(h(1), PAY, now + 100, env.outsider.address)
    with reverts("InsufficientStake", InsufficientStake):  # 1,300 AI staked, 1,301 to lock
        env.submitter.post_job(h(1), 1_301 * AI, now + 100, env.solver.address)
    with reverts("ERC20InsufficientBalance", InsufficientTokens):
        env.submitter.post_job(h(1), 10**9 * AI, now + 100)
    env.submitter.approve("JobMarket", 0)
    with reverts("ERC20InsufficientAllowance", InsufficientTokens):
        env.submitter.post_job(h(1), PAY, now + 100, auto_approve=False)
    with reverts("SafeCastOverflowedUintDowncast"):
        env.submitter.post_job(h(1), 2**96, now + 100)
    with reverts("UnknownJob"):
        env.submitter.assign(77, env.solver.address)


def test_assign_and_commit_reverts(env: Env) -> None:
    staked(env)
    job_id = env.submitter.post_job(h(1), PAY, env.now() + 100).value
    with reverts("NotSubmitter", Unauthorized):
        env.outsider.assign(job_id, env.solver.address)
    with reverts("InsufficientStake", InsufficientStake):
        env.submitter.assign(job_id, env.outsider.address)
    with reverts("WrongStatus"):
        env.solver.commit_result(job_id, h(2))
    env.submitter.assign(job_id, env.solver.address)
    with reverts("WrongStatus"):
        env.submitter.assign(job_id, env.solver2.address)
    with reverts("NotSolver", Unauthorized):
        env.solver2.commit_result(job_id, h(2))
    late = env.submitter.post_job(h(2), PAY, env.now() + 10).value
    env.admin.advance_time(101)
    with reverts("DeadlinePassed"):
        env.submitter.assign(late, env.solver.address)
    with reverts("DeadlinePassed"):
        env.solver.commit_result(job_id, h(2))


def test_refund_after_deadline_and_cancel(env: Env) -> None:
    staked(env)
    start = env.submitter.balance_of()
    assigned = env.submitter.post_job(h(1), PAY, env.now() + 100, env.solver.address).value
    open_job = env.submitter.post_job(h(2), PAY, env.now() + 100).value
    with reverts("DeadlineNotReached"):
        env.outsider.refund(assigned)
    with reverts("NotSubmitter", Unauthorized):
        env.outsider.cancel(open_job)
    with reverts("WrongStatus"):
        env.submitter.cancel(assigned)
    env.submitter.cancel(open_job)
    env.admin.advance_time(101)
    receipt = env.outsider.refund(assigned)
    assert receipt.named("JobRefunded")[0]["amount"] == PAY
    assert env.submitter.balance_of() == start
    refunded = env.admin.job(assigned)
    assert refunded.status == JobStatus.REFUNDED and refunded.challenge_end is None
    with reverts("WrongStatus"):
        env.outsider.refund(assigned)


def _committed(env: Env) -> int:
    job_id = env.submitter.post_job(h(1), PAY, env.now() + 100, env.solver.address).value
    env.solver.commit_result(job_id, h(7))
    return job_id


def _referees(env: Env) -> None:
    for referee in (env.referee, env.referee2, env.referee3):
        referee.stake(Role.REFEREE, 100 * AI)


def test_challenge_reverts(env: Env) -> None:
    staked(env)
    job_id = _committed(env)
    with reverts("InsufficientStake", InsufficientStake):
        env.outsider.challenge(job_id, h(8))
    with reverts("SelfChallenge"):
        env.solver.challenge(job_id, h(8))
    with reverts("SameResult"):
        env.verifier.challenge(job_id, h(7))
    with reverts("ZeroRoot"):
        env.verifier.challenge(job_id, bytes(32))
    with reverts("WrongStatus"):
        env.outsider.finalize(job_id)
    env.admin.advance_time(3600)
    with reverts("ChallengeWindowClosed"):
        env.verifier.challenge(job_id, h(8))


def test_dispute_solver_wins_slashes_the_challenger(env: Env) -> None:
    staked(env)
    _referees(env)
    job_id = _committed(env)
    end = env.verifier.challenge(job_id, h(8)).value
    assert env.admin.job(job_id).status == JobStatus.DISPUTED
    assert env.verifier.stake_of(Role.VERIFIER).locked == 100 * AI
    with reverts("AlreadyChallenged"):
        env.verifier.challenge(job_id, h(9))
    with reverts("WrongStatus"):
        env.outsider.settle(job_id)
    with reverts("ConflictOfInterest"):
        env.submitter.vote(job_id, True)
    env.referee.vote(job_id, True)
    env.referee2.vote(job_id, True)
    env.referee3.vote(job_id, False)
    with reverts("AlreadyVoted"):
        env.referee.vote(job_id, True)
    with reverts("DisputeOpen"):
        env.outsider.finalize(job_id)
    env.admin.advance_time(end - env.now())
    supply = env.admin.total_supply()
    solver_before = env.solver.balance_of()
    assert env.outsider.finalize(job_id).value == Outcome.SOLVER_WINS
    payout = Economics().payout(PAY)
    assert env.solver.balance_of() - solver_before == payout.paid
    assert env.admin.job(job_id).status == JobStatus.SETTLED
    assert env.outsider.claim(job_id, env.verifier.address).value == (0, 100 * AI)
    split = Economics(reward_share_bps=5_000).slash_split(100 * AI)
    assert env.solver.balance_of() - solver_before == payout.paid + split.reward
    assert env.verifier.stake_of(Role.VERIFIER).active == 0
    assert env.outsider.claim(job_id, env.referee.address).value == (0, 0)
    assert env.outsider.claim(job_id, env.referee3.address).value == (0, 100 * AI)
    assert env.referee3.stake_of(Role.REFEREE).active == 0
    assert env.referee.stake_of(Role.REFEREE).locked == 0
    burned = payout.fee + split.burned + 100 * AI
    assert env.admin.total_supply() == supply - burned
    with reverts("NothingToClaim"):
        env.outsider.claim(job_id, env.verifier.address)
    with reverts("WrongStatus"):
        env.outsider.finalize(job_id)


def test_dispute_challenger_wins_refunds_and_slashes_the_solver(env: Env) -> None:
    staked(env)
    _referees(env)
    job_id = _committed(env)
    end = env.verifier.challenge(job_id, h(8)).value
    env.referee.vote(job_id, False)
    env.admin.advance_time(end - env.now())
    sub_before, ver_before = env.submitter.balance_of(), env.verifier.balance_of()
    receipt = env.outsider.finalize(job_id)
    assert receipt.value == Outcome.SOLVER_LOSES
    assert env.submitter.balance_of() - sub_before == PAY
    assert env.solver.stake_of(Role.SOLVER).active == 1_200 * AI
    assert env.outsider.claim(job_id, env.verifier.address).value == (50 * AI, 0)
    assert env.verifier.balance_of() - ver_before == 50 * AI
    assert env.verifier.stake_of(Role.VERIFIER).locked == 0
    assert env.admin.job(job_id).status == JobStatus.REJECTED


def test_batch_anchor_challenge_and_settle(env: Env) -> None:
    staked(env)
    n = 12
    ids = env.submitter.post_jobs(
        [h(i) for i in range(n)], [PAY + i for i in range(n)], env.now() + 500, env.solver.address
    ).value
    assert ids == list(range(ids[0], ids[0] + n))
    tree = ResultTree((job_id, h(1000 + job_id)) for job_id in ids)
    receipt = env.solver.commit_batch(tree)
    batch_id = receipt.value
    assert receipt.named("BatchCommitted")[0]["jobIds"] == ids
    assert env.admin.job(ids[3]).batch_id == batch_id
    for job_id in ids:
        assert env.admin.verify_result(job_id, h(1000 + job_id), tree.proof(job_id))
    assert not env.admin.verify_result(ids[0], h(1), tree.proof(ids[0]))
    assert not env.admin.verify_result(ids[0], h(1000 + ids[0]), tree.proof(ids[1]))
    env.verifier.challenge(ids[5], h(1))
    with reverts("NothingToSettle"):
        env.outsider.settle_batch(ids)
    env.admin.advance_time(3600)
    before = env.solver.balance_of()
    supply = env.admin.total_supply()
    settle = env.outsider.settle_batch([*ids, ids[0]])
    assert settle.value == n - 1
    payouts = [Economics().payout(PAY + i) for i in range(n) if i != 5]
    assert env.solver.balance_of() - before == sum(p.paid for p in payouts)
    assert env.admin.total_supply() == supply - sum(p.fee for p in payouts)
    transfers = [e for e in settle.named("Transfer") if e["to"] == env.solver.address]
    assert len(transfers) == 1
    assert env.admin.job(ids[5]).status == JobStatus.DISPUTED
    with reverts("NothingToSettle"):
        env.outsider.settle_batch(ids)


def test_batch_reverts(env: Env) -> None:
    staked(env)
    deadline = env.now() + 100
    with reverts("EmptyBatch"):
        env.submitter.post_jobs([], [], deadline)
    with reverts("LengthMismatch"):
        env.submitter.post_jobs([h(1)], [PAY, PAY], deadline)
    mine = env.submitter.post_jobs([h(1), h(2)], [PAY, PAY], deadline, env.solver.address).value
    other = env.submitter.post_job(h(3), PAY, deadline, env.solver2.address).value
    with reverts("NotSolver", Unauthorized):
        env.solver.commit_batch(ResultTree([(mine[0], h(5)), (other, h(6))]))
    env.solver.commit_batch(ResultTree([(mine[0], h(5))]))
    with reverts("WrongStatus"):
        env.solver.commit_batch(ResultTree([(mine[1], h(5)), (mine[0], h(5))]))
    with reverts("ZeroRoot"):
        env.solver.commit_result(mine[1], bytes(32))

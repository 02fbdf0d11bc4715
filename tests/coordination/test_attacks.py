"""The economic guarantee, attack by attack (issue 9's findings). Each test is an attack that
worked on the earlier contracts (the finding's number in its name); it must now fail, at a cost
to the attacker: an honest party never loses stake or payment, a dishonest one loses more than
it could gain, and no privileged key moves another party's tokens."""

from __future__ import annotations

import json

from axl import Identity
from coordination import (
    Economics,
    InsufficientStake,
    JobStatus,
    Outcome,
    ResultTree,
    Role,
    Unauthorized,
)

from .conftest import TEST_PARAMS, Env
from .helpers import AI, h, reverts

PAY = 10 * AI


def _stake(env: Env, solver: int = 100) -> None:
    env.solver.stake(Role.SOLVER, solver * AI)
    env.verifier.stake(Role.VERIFIER, 100 * AI)
    for referee in (env.referee, env.referee2, env.referee3):
        referee.stake(Role.REFEREE, 100 * AI)


def _finalize(env: Env, job_id: int) -> Outcome:
    wait = env.admin.dispute(job_id).end - env.now()
    if wait > 0:
        env.admin.advance_time(wait)
    return env.outsider.finalize(job_id).value


def test_1_withheld_batch_tree_loses(env: Env) -> None:
    """A solver anchors a junk batch root and never publishes the tree: a verifier challenges
    with its own root (no proof of the solver's leaf needed), the solver cannot reveal a leaf,
    and loses: submitter refunded, the job's locked stake slashed, the challenger rewarded."""
    _stake(env, solver=200)
    ids = env.submitter.post_jobs([h(1), h(2)], [PAY, PAY], env.now() + 500, env.solver.address)
    junk = env.solver.contract("JobMarket").functions.commitBatch(ids.value, h(666))
    env.solver.transact(junk)
    before = env.submitter.balance_of()
    env.verifier.challenge(ids.value[0], h(5))
    with reverts("NotRevealed"):
        env.referee.vote(ids.value[0], True)
    with reverts("ResultMismatch"):
        env.solver.reveal(ids.value[0], h(7), [])
    assert _finalize(env, ids.value[0]) == Outcome.SOLVER_LOSES
    assert env.submitter.balance_of() - before == PAY
    assert env.solver.stake_of(Role.SOLVER).active == 100 * AI
    assert env.outsider.claim(ids.value[0], env.verifier.address).value == (50 * AI, 0)


def test_1_published_tree_is_revealed_and_an_honest_demand_costs_nothing(env: Env) -> None:
    """A verifier that could not get the tree challenges with the right root: the solver
    reveals the same root; the solver wins and the challenger's bond comes back whole."""
    _stake(env, solver=200)
    ids = env.submitter.post_jobs([h(1), h(2)], [PAY, PAY], env.now() + 500, env.solver.address)
    tree = ResultTree((j, h(100 + j)) for j in ids.value)
    env.solver.commit_batch(tree)
    job = ids.value[1]
    env.verifier.challenge(job, h(100 + job))
    env.solver.reveal(job, h(100 + job), tree.proof(job))
    with reverts("AlreadyRevealed"):
        env.solver.reveal(job, h(100 + job), tree.proof(job))
    env.referee.vote(job, True)
    assert _finalize(env, job) == Outcome.SOLVER_WINS
    assert env.outsider.claim(job, env.verifier.address).value == (0, 0)
    assert env.verifier.stake_of(Role.VERIFIER) == env.verifier.stake_of(Role.VERIFIER)
    assert env.verifier.stake_of(Role.VERIFIER).active == 100 * AI


def test_2_locked_stake_cannot_be_unbonded(env: Env) -> None:
    """Unbonding on assignment no longer escapes: the job's lock stays slashable."""
    _stake(env)
    job = env.submitter.post_job(h(1), PAY, env.now() + 10**6, env.solver.address).value
    with reverts("InsufficientStake", InsufficientStake):
        env.solver.request_unbond(Role.SOLVER, 1)
    env.solver.commit_result(job, h(9))
    env.verifier.challenge(job, h(8))
    with reverts("InsufficientStake", InsufficientStake):
        env.verifier.request_unbond(Role.VERIFIER, 100 * AI)
    env.referee.vote(job, False)
    env.admin.advance_time(TEST_PARAMS.unbonding_delay)
    with reverts("InsufficientStake", InsufficientStake):
        env.solver.request_unbond(Role.SOLVER, 1)
    assert _finalize(env, job) == Outcome.SOLVER_LOSES
    assert env.solver.stake_of(Role.SOLVER).active == 0


def test_3_every_job_and_challenge_locks_its_own_stake(env: Env) -> None:
    """One minimum stake no longer covers many jobs or many challenges."""
    _stake(env, solver=250)
    first = env.submitter.post_job(h(1), PAY, env.now() + 500, env.solver.address).value
    env.submitter.post_job(h(2), PAY, env.now() + 500, env.solver.address)
    with reverts("InsufficientStake", InsufficientStake):  # 50 AI free, 100 AI per job
        env.submitter.post_job(h(3), PAY, env.now() + 500, env.solver.address)
    with reverts("InsufficientStake", InsufficientStake):
        env.submitter.post_jobs([h(4), h(5)], [PAY, PAY], env.now() + 500, env.solver.address)
    env.solver.commit_result(first, h(9))
    env.solver.commit_result(first + 1, h(9))
    env.verifier.challenge(first, h(8))
    with reverts("InsufficientStake", InsufficientStake):
        env.verifier.challenge(first + 1, h(8))
    # Two cheats cost two locks: both jobs lose, 200 AI slashed.
    env.verifier.stake(Role.VERIFIER, 100 * AI)
    env.verifier.challenge(first + 1, h(8))
    env.referee.vote(first, False)
    env.referee2.vote(first + 1, False)
    assert _finalize(env, first) == Outcome.SOLVER_LOSES
    env.outsider.finalize(first + 1)
    assert env.solver.stake_of(Role.SOLVER).active == 50 * AI


def test_4_no_key_holds_a_role_that_moves_tokens(env: Env) -> None:
    """The deployer holds no role anywhere; nobody can slash outside a dispute or mint."""
    _stake(env)
    me = env.admin.address
    for contract, roles in {
        "AIToken": ("DEFAULT_ADMIN_ROLE", "MINTER_ROLE"),
        "Staking": ("DEFAULT_ADMIN_ROLE", "GOVERNOR_ROLE"),
        "JobMarket": ("DEFAULT_ADMIN_ROLE", "GOVERNOR_ROLE"),
        "AXLTimelock": ("DEFAULT_ADMIN_ROLE", "PROPOSER_ROLE"),
    }.items():
        for role in roles:
            assert not env.admin.has_role(contract, role, me), (contract, role)
    timelock = env.admin.contract("AXLTimelock").address
    assert env.admin.has_role("AIToken", "MINTER_ROLE", timelock)
    staking = env.admin.contract("Staking").functions
    for caller in (env.admin, env.outsider):
        with reverts("NotMarket"):
            caller.transact(staking.slashLocked(env.solver.address, 0, AI, caller.address))
        with reverts("MarketAlreadyBound" if caller is env.admin else "NotMarket"):
            caller.transact(staking.bindMarket(caller.address))
    with reverts("AccessControlUnauthorizedAccount", Unauthorized):
        env.admin.mint(me, AI)
    abi = {e.get("name") for e in env.admin.contract("Staking").abi}
    assert "slash" not in abi and "grantRole" in abi  # the admin-granted slash path is gone
    with reverts("AccessControlUnauthorizedAccount", Unauthorized):
        grant = staking.grantRole(bytes(32), me)
        env.admin.transact(grant)


def test_5_a_dispute_nobody_resolves_still_ends(env: Env) -> None:
    """No referee ever acts: after the dispute window anyone finalizes; the committed result
    stands (solver paid, its lock back) and the challenger's bond comes back."""
    _stake(env)
    job = env.submitter.post_job(h(1), PAY, env.now() + 500, env.solver.address).value
    env.solver.commit_result(job, h(9))
    env.verifier.challenge(job, h(8))
    before = env.solver.balance_of()
    assert _finalize(env, job) == Outcome.STANDS
    assert env.solver.balance_of() - before == Economics().payout(PAY).paid
    assert env.outsider.claim(job, env.verifier.address).value == (0, 0)
    assert env.solver.stake_of(Role.SOLVER).locked == 0
    assert env.verifier.stake_of(Role.VERIFIER).locked == 0


def test_6_parameters_are_bounded_in_the_contracts(env: Env) -> None:
    """Out-of-bounds parameters revert at deployment; a proposal needs a threshold."""
    from coordination import Chain

    chain = Chain(env.admin._conn, env.admin._account, None)
    token = env.admin.contract("AIToken").address
    timelock = env.admin.contract("AXLTimelock").address
    from coordination._deploy import deploy_contract

    base = [token, timelock, 7 * 24 * 3600, 5_000, AI, AI, AI]
    for index, bad in ((3, 5_001), (2, 0), (4, 0)):
        args = list(base)
        args[index] = bad
        with reverts("InvalidParameter"):
            deploy_contract(chain, "Staking", *args)
    with reverts("InvalidGovernorSetting"):
        deploy_contract(chain, "AXLGovernor", token, timelock, 1, 10, 0, 4)
    staking = env.admin.contract("Staking").address
    for window, dispute in ((1, 3600), (3600, 1)):
        with reverts("InvalidParameter"):
            deploy_contract(chain, "JobMarket", token, staking, timelock, 50, window, dispute, 0)
    constants = json.dumps(env.admin.contract("Staking").abi)
    assert "MAX_REWARD_SHARE_BPS" in constants


def test_6_a_puppet_challenger_recovers_at_most_half(env: Env) -> None:
    """A cheat whose own puppet is the only challenger still loses half its lock."""
    _stake(env)
    env.outsider.stake(Role.VERIFIER, 100 * AI)  # the puppet
    job = env.submitter.post_job(h(1), PAY, env.now() + 500, env.solver.address).value
    env.solver.commit_result(job, h(9))
    env.outsider.challenge(job, h(8))
    env.referee.vote(job, False)
    pair = env.solver.balance_of() + env.outsider.balance_of()
    assert _finalize(env, job) == Outcome.SOLVER_LOSES
    env.outsider.claim(job)
    gained = env.solver.balance_of() + env.outsider.balance_of() - pair
    assert gained == 50 * AI and env.solver.stake_of(Role.SOLVER).active == 0  # lost 100, got 50


def test_7_a_first_puppet_does_not_shut_out_honest_challengers(env: Env) -> None:
    """The cheat's puppet challenges first (with a root it will not defend); an honest
    verifier still challenges, the referees judge the solver's root, the cheat loses and the
    honest verifier is paid its share."""
    _stake(env)
    env.outsider.stake(Role.VERIFIER, 100 * AI)
    job = env.submitter.post_job(h(1), PAY, env.now() + 500, env.solver.address).value
    env.solver.commit_result(job, h(9))
    env.outsider.challenge(job, h(8))
    env.verifier.challenge(job, h(10))
    assert env.admin.dispute(job).challengers == 2
    env.referee.vote(job, False)
    env.referee2.vote(job, False)
    env.referee3.vote(job, True)
    assert _finalize(env, job) == Outcome.SOLVER_LOSES
    assert env.outsider.claim(job, env.verifier.address).value == (25 * AI, 0)
    assert env.outsider.claim(job, env.referee3.address).value == (0, 100 * AI)
    assert env.admin.job(job).status == JobStatus.REJECTED


def test_8_a_squatter_cannot_take_a_peer_identity(env: Env) -> None:
    """Binding a victim's key without its signature neither blocks the victim nor is
    returned for the key."""
    victim = Identity.generate()
    registry = env.outsider.contract("IdentityRegistry").functions
    env.outsider.transact(registry.bind(victim.peer_id.public_key, b"\x01" * 64))
    assert env.admin.account_of(victim.peer_id) is None
    assert env.admin.peer_of(env.outsider.address) is None
    env.solver.bind_identity(victim)
    assert env.admin.account_of(victim.peer_id) == env.solver.address
    assert env.admin.peer_of(env.solver.address) == victim.peer_id


def test_verifier_fee_pays_attesters_and_slashes_them_with_a_cheat(env: Env) -> None:
    """Attesters of a matching root share the verifier fee at settlement; attesting a root
    the referees then reject costs the attester its lock."""
    _stake(env, solver=300)
    env.verifier.stake(Role.VERIFIER, 100 * AI)
    env.solver2.stake(Role.VERIFIER, 200 * AI)
    jobs = env.submitter.post_jobs(
        [h(1), h(2)], [PAY, PAY], env.now() + 500, env.solver.address
    ).value
    tree = ResultTree((j, h(50 + j)) for j in jobs)
    env.solver.commit_batch(tree)
    with reverts("ResultMismatch"):
        env.verifier.attest(jobs[0], h(1), tree.proof(jobs[0]))
    env.verifier.attest(jobs[0], h(50 + jobs[0]), tree.proof(jobs[0]))
    env.solver2.attest(jobs[0], h(50 + jobs[0]), tree.proof(jobs[0]))
    env.solver2.attest(jobs[1], h(50 + jobs[1]), tree.proof(jobs[1]))
    with reverts("AlreadyAttested"):
        env.verifier.attest(jobs[0], h(50 + jobs[0]), tree.proof(jobs[0]))
    with reverts("SelfChallenge"):
        env.solver.attest(jobs[0], h(50 + jobs[0]), tree.proof(jobs[0]))
    env.verifier.challenge(jobs[1], h(1))
    env.solver.reveal(jobs[1], h(50 + jobs[1]), tree.proof(jobs[1]))
    env.referee.vote(jobs[1], False)
    env.admin.advance_time(TEST_PARAMS.challenge_window)
    verifier_before, other_before = env.verifier.balance_of(), env.solver2.balance_of()
    assert env.outsider.settle_batch(jobs).value == 1
    payout = Economics().payout(PAY, attested=True)
    assert payout.verifier_fee == PAY // 100
    assert env.verifier.balance_of() - verifier_before == payout.verifier_fee // 2
    assert env.solver2.balance_of() - other_before == payout.verifier_fee // 2
    assert env.verifier.stake_of(Role.VERIFIER).locked == 100 * AI  # the challenge bond only
    assert _finalize(env, jobs[1]) == Outcome.SOLVER_LOSES
    assert env.solver2.stake_of(Role.VERIFIER).active == 100 * AI  # lost the job 2 lock

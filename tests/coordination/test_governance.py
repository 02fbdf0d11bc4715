"""Token-weighted governance of protocol parameters through the OpenZeppelin Governor."""

from __future__ import annotations

import pytest

from coordination import Unauthorized

from .conftest import TEST_PARAMS, Env
from .helpers import reverts

CHANGES = {
    "fee_bps": 100,
    "challenge_window": 600,
    "min_solver_stake": 5 * 10**18,
    "unbonding_delay": 2 * 24 * 3600,
    "verifier_fee_bps": 200,
}


def test_proposal_changes_parameters(env: Env) -> None:
    for voter in (env.submitter, env.solver):
        voter.delegate()
    env.admin.mine(1)
    assert env.solver.votes() == env.solver.balance_of() > 0
    proposal = env.submitter.propose(CHANGES, "tune the market").value
    env.admin.mine(TEST_PARAMS.voting_delay + 1)
    assert env.admin.proposal_state(proposal) == 1  # Active
    env.submitter.cast_vote(proposal, 1)
    env.solver.cast_vote(proposal, 0)
    with reverts("GovernorAlreadyCastVote"):
        env.solver.cast_vote(proposal, 1)
    env.admin.mine(TEST_PARAMS.voting_period + 1)
    assert env.admin.proposal_state(proposal) == 3  # Defeated: a tie is not a majority
    env.verifier.delegate()
    env.admin.mine(1)
    again = env.verifier.propose(CHANGES, "tune the market, again").value
    env.admin.mine(TEST_PARAMS.voting_delay + 1)
    env.verifier.cast_vote(again, 1)
    env.submitter.cast_vote(again, 1)
    env.admin.mine(TEST_PARAMS.voting_period + 1)
    assert env.admin.proposal_state(again) == 4  # Succeeded
    env.outsider.queue(CHANGES, "tune the market, again")
    assert env.admin.proposal_state(again) == 5  # Queued
    with reverts("TimelockUnexpectedOperationState"):
        env.outsider.execute(CHANGES, "tune the market, again")
    env.admin.advance_time(TEST_PARAMS.timelock_delay)
    env.outsider.execute(CHANGES, "tune the market, again")
    params = env.admin.params()
    assert (
        params.fee_bps,
        params.challenge_window,
        params.min_solver_stake,
        params.unbonding_delay,
        params.verifier_fee_bps,
    ) == (100, 600, 5 * 10**18, 2 * 24 * 3600, 200)
    assert env.admin.proposal_state(again) == 7  # Executed


def test_out_of_bounds_proposal_fails_at_execution(env: Env) -> None:
    for voter in (env.submitter, env.solver):
        voter.delegate()
    env.admin.mine(1)
    changes = {"reward_share_bps": 10_000}
    proposal = env.submitter.propose(changes, "take everything").value
    env.admin.mine(TEST_PARAMS.voting_delay + 1)
    env.submitter.cast_vote(proposal, 1)
    env.solver.cast_vote(proposal, 1)
    env.admin.mine(TEST_PARAMS.voting_period + 1)
    env.outsider.queue(changes, "take everything")
    env.admin.advance_time(TEST_PARAMS.timelock_delay)
    with reverts("InvalidParameter"):
        env.outsider.execute(changes, "take everything")


def test_proposal_needs_the_threshold(env: Env) -> None:
    pauper = env.admin.with_account(env.admin.dev_accounts()[9])
    with reverts("GovernorInsufficientProposerVotes"):
        pauper.propose({"fee_bps": 1}, "no votes")


def test_parameters_only_through_governance(env: Env) -> None:
    market = env.admin.contract("JobMarket").functions
    with reverts("AccessControlUnauthorizedAccount", Unauthorized):
        env.admin.transact(market.setFeeBps(10))
    with pytest.raises(ValueError, match="unknown parameter"):
        env.admin.propose({"fee": 1}, "typo")

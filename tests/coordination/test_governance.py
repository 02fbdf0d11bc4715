"""Token-weighted governance of protocol parameters through the OpenZeppelin Governor."""

from __future__ import annotations

import pytest

from coordination import Unauthorized

from .conftest import TEST_PARAMS, Env
from .helpers import reverts

CHANGES = {"fee_bps": 100, "challenge_window": 600, "min_solver_stake": 5, "unbonding_delay": 60}


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
    env.outsider.execute(CHANGES, "tune the market, again")
    params = env.admin.params()
    assert (
        params.fee_bps,
        params.challenge_window,
        params.min_solver_stake,
        params.unbonding_delay,
    ) == (100, 600, 5, 60)
    assert env.admin.proposal_state(again) == 7  # Executed


def test_parameters_only_through_governance(env: Env) -> None:
    market = env.admin.contract("JobMarket").functions
    with reverts("AccessControlUnauthorizedAccount", Unauthorized):
        env.admin.transact(market.setFeeBps(10))
    with pytest.raises(ValueError, match="unknown parameter"):
        env.admin.propose({"fee": 1}, "typo")

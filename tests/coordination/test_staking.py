"""Staking: stake, unbonding delay, withdrawal, slashing only through the market."""

from __future__ import annotations

from coordination import InsufficientStake, Role, Unauthorized

from .conftest import TEST_PARAMS, Env
from .helpers import AI, reverts


def test_stake_unbond_withdraw(env: Env) -> None:
    start = env.solver.balance_of()
    env.solver.stake(Role.SOLVER, 150 * AI)
    assert env.solver.stake_of(Role.SOLVER).active == 150 * AI
    assert env.solver.stake_of(Role.VERIFIER).active == 0
    with reverts("InsufficientStake", InsufficientStake):
        env.solver.request_unbond(Role.SOLVER, 151 * AI)
    with reverts("ZeroAmount"):
        env.solver.request_unbond(Role.SOLVER, 0)
    with reverts("ZeroAmount"):
        env.solver.stake(Role.SOLVER, 0)
    with reverts("NothingToWithdraw"):
        env.solver.withdraw(Role.SOLVER)
    release_at = env.solver.request_unbond(Role.SOLVER, 50 * AI).value
    assert release_at == env.now() + TEST_PARAMS.unbonding_delay
    position = env.solver.stake_of(Role.SOLVER)
    assert (position.active, position.unbonding, position.release_at) == (
        100 * AI,
        50 * AI,
        release_at,
    )
    with reverts("StillUnbonding"):
        env.solver.withdraw(Role.SOLVER)
    env.admin.advance_time(TEST_PARAMS.unbonding_delay)
    assert env.solver.withdraw(Role.SOLVER).value == 50 * AI
    assert env.solver.balance_of() == start - 100 * AI
    assert env.solver.stake_of(Role.SOLVER).unbonding == 0
    # A stake beyond the uint128 position field reverts instead of being truncated.
    env.admin.mint(env.solver.address, 2**128)
    with reverts("SafeCastOverflowedUintDowncast"):
        env.solver.stake(Role.SOLVER, 2**128)


def test_unbonding_stake_below_minimum_cannot_be_assigned(env: Env) -> None:
    env.solver.stake(Role.SOLVER, 100 * AI)
    env.solver.request_unbond(Role.SOLVER, 1)
    with reverts("InsufficientStake", InsufficientStake):
        env.submitter.post_job(b"\x01" * 32, AI, env.now() + 100, env.solver.address)


def test_slash_only_by_the_market(env: Env) -> None:
    env.solver.stake(Role.SOLVER, 100 * AI)
    staking = env.outsider.contract("Staking").functions
    with reverts("AccessControlUnauthorizedAccount", Unauthorized):
        env.outsider.transact(
            staking.slash(env.solver.address, int(Role.SOLVER), 10, env.outsider.address)
        )
    with reverts("AccessControlUnauthorizedAccount", Unauthorized):
        env.admin.transact(
            staking.slash(env.solver.address, int(Role.SOLVER), 10, env.outsider.address)
        )


def test_slash_reaches_unbonding_stake(env: Env) -> None:
    env.solver.stake(Role.SOLVER, 100 * AI)
    env.verifier.stake(Role.VERIFIER, 100 * AI)
    job_id = env.submitter.post_job(b"\x01" * 32, AI, env.now() + 100, env.solver.address).value
    env.solver.commit_result(job_id, b"\x02" * 32)
    env.solver.request_unbond(Role.SOLVER, 100 * AI)
    env.verifier.challenge(job_id, b"\x02" * 32)
    assert env.admin.resolve_dispute(job_id, False).value == 100 * AI
    position = env.solver.stake_of(Role.SOLVER)
    assert (position.active, position.unbonding) == (0, 0)

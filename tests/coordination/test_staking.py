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
    # A stake beyond the uint128 position field reverts (before any transfer) instead of
    # being truncated.
    with reverts("SafeCastOverflowedUintDowncast"):
        env.solver.stake(Role.SOLVER, 2**128)


def test_unbonding_stake_cannot_be_locked(env: Env) -> None:
    env.solver.stake(Role.SOLVER, 100 * AI)
    env.solver.request_unbond(Role.SOLVER, 1)
    with reverts("InsufficientStake", InsufficientStake):
        env.submitter.post_job(b"\x01" * 32, AI, env.now() + 100, env.solver.address)


def test_lock_and_slash_only_by_the_market(env: Env) -> None:
    env.solver.stake(Role.SOLVER, 100 * AI)
    staking = env.outsider.contract("Staking").functions
    for caller in (env.outsider, env.admin):
        for fn in (
            staking.slashLocked(env.solver.address, int(Role.SOLVER), 10, caller.address),
            staking.lock(env.solver.address, int(Role.SOLVER), 10),
            staking.unlock(env.solver.address, int(Role.SOLVER), 0),
        ):
            with reverts("NotMarket"):
                caller.transact(fn)
    with reverts("AccessControlUnauthorizedAccount", Unauthorized):
        env.admin.transact(staking.setMinStake(int(Role.SOLVER), AI))

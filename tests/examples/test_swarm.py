"""The end-to-end market (``make demo``): checked against the chain's own state."""

from __future__ import annotations

from agents.market import LOCAL_PARAMS
from coordination import JobStatus
from examples import swarm

TOKEN = 10**18


async def test_swarm_settles_the_honest_job_and_slashes_the_cheat() -> None:
    report, figures = await swarm.run(quiet=True)
    assert report.verified == [1]
    verdict = report.verdicts[2]
    assert verdict.outcome == "challenger_wins"
    assert verdict.rounds > 0
    assert figures["job1_status"] == JobStatus.SETTLED
    assert figures["job2_status"] == JobStatus.REJECTED
    payment, stake = 20 * TOKEN, 100 * TOKEN
    lock = max(LOCAL_PARAMS.min_solver_stake, payment)  # the cheat's job lock, slashed
    fee = payment * LOCAL_PARAMS.fee_bps // 10_000
    verifier_fee = payment * LOCAL_PARAMS.verifier_fee_bps // 10_000  # the verifier attested
    reward = lock * LOCAL_PARAMS.reward_share_bps // 10_000  # to the challenger's pool
    assert figures["fee_burned"] == fee
    # No token created or lost except by the documented burns: the fee, the slash less the
    # challengers' reward share.
    assert figures["supply_before"] - figures["supply_after"] == fee + lock - reward
    assert figures["balance_honest"] == 1_000 * TOKEN - stake + payment - fee - verifier_fee
    assert figures["balance_cheat"] == 1_000 * TOKEN - stake
    assert figures["stake_cheat"] == stake - lock
    assert figures["balance_verifier"] == 1_000 * TOKEN - stake + verifier_fee + reward
    assert figures["stake_verifier"] == stake  # bond and attestation lock released
    assert figures["balance_submitter"] == 1_000 * TOKEN - payment
    assert figures["balance_referee"] == 1_000 * TOKEN - stake  # staked, vote released
    assert figures["stake_referee"] == stake
    assert figures["locked"] == 0  # every lock released or slashed
    assert any("recomputed 1 op" in line for line in report.lines)

"""The end-to-end market (``make demo``): checked against the chain's own state."""

from __future__ import annotations

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
    fee = payment * 50 // 10_000
    assert figures["fee_burned"] == fee
    # No token created or lost except by the documented burns: the fee, half the slash.
    assert figures["supply_before"] - figures["supply_after"] == fee + stake // 2
    assert figures["balance_honest"] == 1_000 * TOKEN - stake + payment - fee
    assert figures["balance_cheat"] == 1_000 * TOKEN - stake
    assert figures["balance_verifier"] == 1_000 * TOKEN - stake + stake // 2
    assert figures["balance_submitter"] == 1_000 * TOKEN - payment
    assert any("recomputed 1 op" in line for line in report.lines)

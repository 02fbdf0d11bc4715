"""Attacks on the market's referee wiring (examples/swarm.py): a challenger's Dispute must
not be able to get an honest solver slashed. The referee reads the solver, its root and the
spec hash from the chain; the challenger's own root is its only claim."""

from __future__ import annotations

import trio

from agents import AgentRuntime
from compute import Party
from coordination import Chain, DeployParams, JobStatus, Role
from examples import swarm

TOKEN = 10**18


class _Challenger(swarm.GameParty):
    """A verifier that challenges on chain and then sends whatever Dispute it likes."""


async def _dispute(
    root_of: str, *, sender_is_challenger: bool = True
) -> tuple[Chain, dict[str, Chain], swarm.Report, int]:
    report = swarm.Report()
    report.say = lambda who, text: report.lines.append(f"{who} {text}")  # type: ignore[method-assign]
    chain = Chain.embedded().deploy(DeployParams(challenge_window=600))
    accounts = chain.dev_accounts()
    wallets = {
        n: chain.with_account(accounts[i + 1])
        for i, n in enumerate(("sub", "solver", "chal", "other"))
    }
    for name, wallet in wallets.items():
        chain.mint(wallet.address, 1_000 * TOKEN)
        if name == "solver":
            wallet.stake(Role.SOLVER, 100 * TOKEN)
        else:
            wallet.stake(Role.VERIFIER, 100 * TOKEN)
    spec = swarm.small_spec(3)
    runtime = AgentRuntime(seed=b"swarm-referee-test")
    solver = runtime.add(swarm.Solver("solver", report, bid_delay=0.0), chain=wallets["solver"])
    challenger = runtime.add(_Challenger("chal"), chain=wallets["chal"])
    other = runtime.add(_Challenger("other"), chain=wallets["other"])
    runtime.add(swarm.Referee(report, query_timeout=5.0), chain=chain)
    for agent, name in ((solver, "solver"), (challenger, "chal"), (other, "other")):
        wallets[name].bind_identity(agent.identity)
    job_id = (
        wallets["sub"]
        .post_job(swarm.spec_hash(spec), 20 * TOKEN, chain.block_timestamp() + 7200)
        .value
    )
    wallets["sub"].assign(job_id, wallets["solver"].address)
    honest = Party("a", spec)
    solver.parties[f"job-{job_id}"] = honest
    wallets["solver"].commit_result(job_id, honest.root)
    wallets["chal"].challenge(job_id, honest.root)
    mine = Party("b", spec)  # the challenger's own (honest) run: same root as the solver
    challenger.parties[f"job-{job_id}"] = mine
    root = {"solver": honest.root, "made_up": b"\x13" * 32}[root_of]
    sender = challenger if sender_is_challenger else other
    async with runtime:
        await sender.send(
            "referee", swarm.Dispute(job_id=job_id, spec=spec.model_dump_json(), root_verifier=root)
        )
        with trio.fail_after(120):
            await report.reached(f"dispute-{job_id}").wait()
    return chain, wallets, report, job_id


async def test_a_challenger_claiming_the_solvers_root_slashes_nobody() -> None:
    chain, wallets, report, job_id = await _dispute("solver")
    assert chain.stake_of(Role.SOLVER, wallets["solver"].address).active == 100 * TOKEN
    assert chain.stake_of(Role.VERIFIER, wallets["chal"].address).active == 100 * TOKEN
    assert chain.job(job_id).status is JobStatus.DISPUTED  # no void outcome on chain yet
    assert any("no_dispute" in line for line in report.lines)


async def test_a_made_up_root_loses_against_the_chains_root() -> None:
    chain, wallets, report, job_id = await _dispute("made_up")
    # The game is played against the solver's committed root (from the chain): the honest
    # solver defends it and the challenger, who cannot support its made-up root, loses.
    assert report.verdicts[job_id].solver_wins
    assert chain.stake_of(Role.SOLVER, wallets["solver"].address).active == 100 * TOKEN
    assert chain.stake_of(Role.VERIFIER, wallets["chal"].address).active < 100 * TOKEN
    assert chain.job(job_id).status is JobStatus.SETTLED


async def test_a_dispute_from_someone_other_than_the_challenger_is_ignored() -> None:
    chain, wallets, report, job_id = await _dispute("made_up", sender_is_challenger=False)
    assert job_id not in report.verdicts
    assert chain.stake_of(Role.SOLVER, wallets["solver"].address).active == 100 * TOKEN
    assert any("not the job's challenger" in line for line in report.lines)

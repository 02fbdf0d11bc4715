"""Attacks on the market's Referee on the real contracts: a challenger must not be able to get
an honest solver slashed or unpaid. The referee reads the solver, both roots and the spec hash
from the chain; a Challenge message only asks it to play, and only from an on-chain
challenger. Each attack ends with the honest solver paid and its stake whole."""

from __future__ import annotations

from typing import Literal

import trio

from agents.market import (
    TOKEN,
    Challenge,
    GameParty,
    LocalMarket,
    Referee,
    RefereeConfig,
    game_id,
    spec_hash,
)
from agents.market._referee import _Dispute
from compute import Party
from coordination import JobStatus, ResultTree, Role

from .conftest import tiny_spec

Attack = Literal["made_up_root", "solver_root", "not_the_challenger"]
PAYMENT = 20 * TOKEN
MADE_UP = b"\x13" * 32


async def _attack(attack: Attack) -> tuple[LocalMarket, Referee, int]:
    market = LocalMarket.create(seed=b"attack-" + attack.encode())
    solver = market.add(GameParty("solver"))
    challenger = market.add(GameParty("challenger"))
    stranger = market.add(GameParty("stranger"))
    config = RefereeConfig(query_timeout=10.0, poll_interval=0.1, challenge_timeout=1.0)
    referee = market.add(Referee(config))
    wallets = market.wallets
    wallets["solver"].stake(Role.SOLVER, 100 * TOKEN)
    for name in ("challenger", "stranger"):
        wallets[name].stake(Role.VERIFIER, 100 * TOKEN)
    submitter = market.wallet("submitter")
    chain = market.chain
    specs = [tiny_spec(3), tiny_spec(4)]
    runs = [Party("a", spec) for spec in specs]
    deadline = chain.block_timestamp() + 7_200
    solver_address = wallets["solver"].address
    job_ids = submitter.post_jobs(
        [spec_hash(s) for s in specs], [PAYMENT] * 2, deadline, solver_address
    ).value
    job_id = job_ids[0]
    tree = ResultTree([(j, run.root) for j, run in zip(job_ids, runs, strict=True)])
    if attack == "solver_root":  # batched: a challenger may commit the solver's own leaf
        wallets["solver"].commit_batch(tree)
    else:
        for j, run in zip(job_ids, runs, strict=True):
            wallets["solver"].commit_result(j, run.root)
    mine = Party("b", specs[0])  # the challenger's own honest run: the solver's root
    claimed = mine.root if attack == "solver_root" else MADE_UP
    sender = stranger if attack == "not_the_challenger" else challenger
    async with market.runtime:
        solver.parties[game_id(job_id)] = runs[0]
        challenger.parties[game_id(job_id)] = mine
        stranger.parties[game_id(job_id)] = mine
        wallets["challenger"].challenge(job_id, claimed)
        if attack == "solver_root":  # the solver answers the challenge by revealing its leaf
            wallets["solver"].reveal(job_id, runs[0].root, tree.proof(job_id))
        message = Challenge(job_id=job_id, challenger_root=claimed, spec=specs[0].model_dump_json())
        await sender.send(referee.peer_id, message)
        with trio.fail_after(120):
            while job_id not in referee.verdicts:
                await market.quiet()
                now, view = chain.block_timestamp(), chain.job(job_id)
                end = chain.dispute(job_id).end
                target = (
                    view.challenge_end if view.challenge_end and now < view.challenge_end else end
                )
                chain.advance_time(max(1, target - now))
    return market, referee, job_id


def _assert_solver_paid_and_whole(market: LocalMarket, job_id: int) -> None:
    chain, solver = market.chain, market.wallets["solver"]
    assert chain.job(job_id).status is JobStatus.SETTLED
    settled = [e for e in chain.events() if e.name == "JobSettled" and e["jobId"] == job_id]
    assert len(settled) == 1 and settled[0]["solver"] == solver.address
    assert solver.stake_of(Role.SOLVER).active == 100 * TOKEN
    slashed = [e["account"] for e in chain.events() if e.name == "Slashed"]
    assert solver.address not in slashed


async def test_a_challenger_claiming_a_made_up_root_loses_and_the_solver_is_paid() -> None:
    market, referee, job_id = await _attack("made_up_root")
    _assert_solver_paid_and_whole(market, job_id)
    challenger = market.wallets["challenger"].address
    # The game is played against the challenger's on-chain root, which its run cannot back.
    assert referee.cases[(job_id, challenger.lower())] == "solver_wins"
    assert referee.verdicts[job_id].outcome == "solver_wins"
    bond = market.chain.params().min_verifier_stake
    assert market.stake("challenger", Role.VERIFIER) == 100 * TOKEN - bond


async def test_a_challenger_with_the_solvers_root_cannot_cost_the_solver_its_payment() -> None:
    # Equal roots dispute nothing. Without a vote the dispute would end Undecided and refund
    # the submitter, so a submitter's puppet could get honest work for free: the referee
    # votes for the solver. The contract releases the bond of a challenger whose root equals
    # a winning solver's (that is how a verifier makes a batched leaf be revealed).
    market, referee, job_id = await _attack("solver_root")
    _assert_solver_paid_and_whole(market, job_id)
    challenger = market.wallets["challenger"].address
    assert referee.cases[(job_id, challenger.lower())] == "no_dispute"
    assert referee.verdicts[job_id].outcome == "solver_wins"
    assert referee.stats.snapshot().get("market.votes", 0) == 1
    assert market.stake("challenger", Role.VERIFIER) == 100 * TOKEN
    assert not [e for e in market.chain.events() if e.name == "Slashed"]


async def test_a_challenge_message_from_a_peer_that_is_not_the_challenger_is_ignored() -> None:
    market, referee, job_id = await _attack("not_the_challenger")
    _assert_solver_paid_and_whole(market, job_id)
    assert referee.stats.snapshot()["market.challenges_ignored"] >= 1
    stranger = market.wallets["stranger"].address
    assert (job_id, stranger.lower()) not in referee.cases
    assert market.stake("stranger", Role.VERIFIER) == 100 * TOKEN
    # The on-chain challenger never made its case: it loses once the window closed.
    assert referee.verdicts[job_id].outcome == "solver_wins"


async def test_a_case_heard_while_the_challenge_event_is_read_is_kept() -> None:
    """A race seen under load in the twenty-job market test: the referee's chain watcher saw
    a job's ``Challenged`` event, awaited the job's view, and meanwhile the challenger's
    :class:`Challenge` message registered the dispute and its game was won by the challenger;
    the watcher then replaced the dispute with a fresh one, the won case was lost, and once
    ``challenge_timeout`` passed the referee voted FOR the cheating solver (paid, the honest
    challengers slashed). The watcher now keeps the dispute it finds."""
    market = LocalMarket.create(seed=b"race")
    referee = market.add(Referee(RefereeConfig(challenge_timeout=1.0)))
    challenger = "0x" + "ab" * 20
    heard = _Dispute(challenge_end=100, end=5_000)
    heard.challengers[challenger] = 0.0
    heard.cases[challenger] = "challenger_wins"

    class View:
        challenge_end = 100

    async def job(job_id: int) -> View:
        await trio.lowlevel.checkpoint()
        referee._disputes.setdefault(job_id, heard)  # the Challenge handler, meanwhile
        return View()

    async with market.runtime:
        referee.market.job = job  # type: ignore[method-assign,assignment]
        await referee._challenged(7, challenger.upper().replace("0X", "0x"), 5_000)
    assert referee._disputes[7] is heard
    assert referee._vote(heard, now=0) is False  # against the solver, at once

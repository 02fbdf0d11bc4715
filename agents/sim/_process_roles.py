"""The agents a ``--processes`` worker hosts: ``agents.market``'s library roles with the
scenario's settings, and the adversaries — each overriding the same library hook as its
in-process twin in ``_adversaries.py`` (``result_root``, ``agrees``) or setting the same
library option (``SolverConfig.cheat``/``vanish``, ``VerifierConfig.false_alarm``); the
spammer is ``_spammer.BusSpammer`` itself. The in-process twins read the in-process world
(its bank and journal); these read the chain their account talks to."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import trio

from axl import PeerId
from compute import SGD, Cheat, MLPModel, Party, TaskSpec
from coordination import CoordinationError

from .._agent import Agent
from ..market import (
    TOKEN,
    Referee,
    RefereeConfig,
    Solver,
    SolverConfig,
    SolverJob,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
    Verifier,
    VerifierConfig,
    VerifyPolicy,
)
from ._scenario import Scenario
from ._spammer import BusSpammer

SOLVER_LOCKS = 2
"""Jobs a solver's stake covers at once: a job's lock (``max(minSolverStake, payment)``) is
held until it settles, past its challenge window (600 chain seconds at least, which run
with the wall clock until the drain), so a solver takes two jobs during the arrivals and
later jobs go unassigned (refunded). Tried with 20: every job got a solver (the first
attempts all to one cheat: equal bids fall to the smallest peer id), and the reposts of the
rejected ones went to a cheat not caught yet, whose second round of disputes needs another
challenge and dispute window (4,200 chain seconds) that a 6,000 s drain does not have; with
the submitter refusing solvers caught on its jobs, a run had every repost paid."""

JOB_ATTEMPTS = 3
"""How many times the submitter posts a job in all (a refunded one is posted again)."""

REFEREE_STAKE = 512 * 100 * TOKEN
"""The one referee's stake: a vote locks up to 10 times the minimum (100 AI) until its dispute
is claimed, and it votes on every dispute (as the in-process swarm's referee)."""


class ArrivingSubmitter(Submitter):
    """A submitter that posts the scenario's jobs as they arrive: a Poisson process of
    ``jobs.rate_per_hour`` for ``duration`` wall seconds from :attr:`go` (set when every
    worker is ready), sizes drawn from ``jobs.steps``, all from its own seeded stream."""

    def __init__(self, config: SubmitterConfig, name: str, scenario: Scenario) -> None:
        super().__init__(config, name)
        self.scenario = scenario
        self.go = trio.Event()

    async def on_start(self) -> None:
        await super().on_start()
        self.start_soon(self._arrivals)

    async def _arrivals(self) -> None:
        jobs = self.scenario.jobs
        rng = random.Random(f"axl-processes/{self.scenario.seed}/{self.name}")
        rate = jobs.rate_per_hour / 3600
        await self.go.wait()
        start, t = trio.current_time(), 0.0
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= self.scenario.duration:
                return
            await trio.sleep_until(start + t)
            model = MLPModel(in_dim=4, hidden=(jobs.hidden,), classes=2)
            steps, seed = rng.randint(*jobs.steps), rng.randrange(2**31)
            spec = TaskSpec(model=model, optimizer=SGD(), steps=steps, batch_size=2, seed=seed,
                            checkpoint_interval=1)  # fmt: skip
            try:
                await self.submit([spec])
            except CoordinationError as exc:
                self.log.warning("posting a job failed: %s", exc)


class LazySolver(Solver):
    """Commits the root of the job before its own (read from chain) instead of its run's
    (the in-process ``LazySolver``'s hook): no run backs it, so it cannot answer the game."""

    def result_root(self, job: SolverJob, party: Party) -> bytes:
        copied = self.chain.job(max(1, job.job_id - 1)).result_root
        if copied is None or copied == bytes(32) or copied == party.root:
            copied = bytes.fromhex(job.spec.task_id)  # nothing to copy yet: any root will do
        return bytes(copied)


class ColludingVerifier(Verifier):
    """Vouches for its partner solver (chain address ``partner``): a result of the partner's
    that it checks is attested as reproduced whatever its re-run says (the in-process
    ``ColludingVerifier``'s hook); others it checks honestly."""

    def __init__(self, config: VerifierConfig, name: str, partner: str) -> None:
        super().__init__(config, name)
        self.partner = partner.lower()

    def agrees(self, job_id: int, party: Party, root: bytes) -> bool:
        solver = self.chain.job(job_id).solver
        if solver is not None and solver.lower() == self.partner:
            return True
        return super().agrees(job_id, party, root)


class PeerSpammer(BusSpammer):
    """Floods the run's other agents (their peer ids, known from the plan)."""

    def __init__(self, name: str, rate: float, rng: random.Random, peers: Sequence[PeerId]):
        super().__init__(name, rate, rng)
        self.peers = list(peers)

    def pick(self) -> PeerId | None:
        return self.rng.choice(self.peers) if self.peers else None


def build(
    name: str,
    role: str,
    behaviour: str,
    scenario: Scenario,
    *,
    referee: str,
    partner: str = "",
    peers: Sequence[PeerId] = (),
) -> Agent:
    """The agent playing ``name`` (``partner``: a colluding verifier's solver's address;
    ``peers``: whom a spammer floods)."""
    jobs, market = scenario.jobs, scenario.market
    payment = jobs.payment * TOKEN
    sample_bps = round(jobs.verify_rate * 10_000)
    if role == "spammer":
        seed = hashlib.sha256(f"axl-processes/{scenario.seed}/{name}".encode()).digest()
        return PeerSpammer(name, scenario.spam_rate, random.Random(seed), peers)
    if role == "submitter":
        timeouts = TimeoutPolicy(
            commit_timeout=max(1, int(jobs.deadline)), max_attempts=JOB_ATTEMPTS
        )
        config = SubmitterConfig(
            payment=payment, timeouts=timeouts, sample_bps=sample_bps, settle_grace=5
        )
        return ArrivingSubmitter(config, name, scenario)
    if role == "solver":
        kind = "wrong_op" if behaviour == "colluding" else behaviour.removeprefix("cheat:")
        cheats = behaviour.startswith("cheat:") or behaviour == "colluding"
        solver_config = SolverConfig(
            stake=SOLVER_LOCKS * max(100 * TOKEN, payment),
            offer_interval=5.0,
            cheat=Cheat(kind) if cheats else None,  # type: ignore[arg-type]
            vanish=behaviour == "vanishing",
        )
        if behaviour == "lazy":
            return LazySolver(solver_config, name)
        return Solver(solver_config, name)
    if role == "verifier":
        salt = hashlib.sha256(f"{scenario.seed}/{name}".encode()).digest()
        verifier_config = VerifierConfig(
            policy=VerifyPolicy(sample_bps, salt),
            stake=2_000 * TOKEN,  # one lock per attested job in its window
            referee=PeerId.from_string(referee),
            false_alarm=behaviour == "false_accuser",
        )
        if behaviour == "colluding":
            return ColludingVerifier(verifier_config, name, partner)
        return Verifier(verifier_config, name)
    # Asks a silent side again until the game's patience runs out (as the in-process
    # simulator's referee): a frame lost to the link profile, a short partition or a loaded
    # machine does not make an honest party lose its game.
    return Referee(
        RefereeConfig(
            query_timeout=market.query_timeout,
            game_timeout=market.game_patience,
            stake=REFEREE_STAKE,
            query_patience=market.game_patience,
        ),
        name,
    )

"""The swarm's adversaries: subclasses of the market roles that override one hook each
(``train``, ``result_root``, ``agrees``) or set one of the roles' adversarial options
(``SolverConfig.vanish``, ``VerifierConfig.false_alarm``). Everything else — bidding,
anchoring, settling, defending in the game, challenging — is the library's code.

Each reports to the journal whether the root it committed is wrong (a cheat whose
perturbation changes nothing commits the honest root: harmless)."""

from __future__ import annotations

from typing import cast

from agents.market import SolverJob
from compute import Cheat, CheatKind, Dataset, Party, TaskSpec

from ._agents import SimSolver, SimVerifier
from ._world import World


class CheatingSolver(SimSolver):
    """Trains every job with ``compute.Cheat(kind)`` injected at a random step (and op, and
    parameter) and defends that run consistently in the game (``garbage`` answers with random
    bytes, ``silent`` does not answer: the compute layer's parties do that)."""

    def __init__(self, world: World, name: str, kind: str) -> None:
        super().__init__(world, name)
        self.kind = cast(CheatKind, kind)

    def train(self, spec: TaskSpec, dataset: Dataset | None = None) -> Party:
        step = self.rng.randint(1, spec.steps)
        cheat = Cheat(self.kind, step=step, op=self.rng.randrange(64), param=self.rng.randrange(8))
        return Party("a", spec, cheat=cheat, dataset=dataset)

    def result_root(self, job: SolverJob, party: Party) -> bytes:
        self.world.journal.wrong[job.job_id] = party.root != self.honest_root(job.spec)
        return party.root


class LazySolver(SimSolver):
    """Commits the root of the job before its own (read from chain) instead of its run's, so
    it has no run that backs its root and cannot answer the game."""

    def result_root(self, job: SolverJob, party: Party) -> bytes:
        copied = self.world.bank.admin.job(max(1, job.job_id - 1)).result_root
        if copied is None or copied == bytes(32) or copied == party.root:
            copied = bytes.fromhex(job.spec.task_id)  # nothing to copy yet: any root will do
        self.world.journal.wrong[job.job_id] = True
        return copied


class VanishingSolver(SimSolver):
    """Takes the jobs it wins and never delivers (``SolverConfig(vanish=True)``)."""

    def __init__(self, world: World, name: str) -> None:
        super().__init__(world, name, vanish=True)


class FalseAccuser(SimVerifier):
    """Challenges the results it reproduced, claiming a made-up root
    (``VerifierConfig(false_alarm=True)``): it cannot defend that root in the game."""

    def __init__(self, world: World, name: str) -> None:
        super().__init__(world, name, false_alarm=True)


class ColludingVerifier(SimVerifier):
    """Vouches for its partner solver: a result of the partner's that it is drawn to check
    is attested as reproduced whatever its re-run says; others it checks honestly."""

    def __init__(self, world: World, name: str, partner: str) -> None:
        super().__init__(world, name)
        self.partner = partner

    def agrees(self, job_id: int, party: Party, root: bytes) -> bool:
        solver = self.world.bank.admin.job(job_id).solver
        if self.world.name_of(solver) == self.partner:
            self.world.journal.checks.setdefault(job_id, []).append(self.name)
            return True
        return super().agrees(job_id, party, root)

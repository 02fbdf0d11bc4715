"""Catching up after a partition: topic messages are delivered at most once (docs/wire.md),
so a verifier cut off while jobs were committed never hears of them. The verifier of
``axl run`` reads the chain's commit events (the chain is the truth, and it is re-read from
where it stopped once reachable again); for a job committed more than a poll ago whose
commitment it has not heard, it asks the job's solver (its peer id from the identity
registry) for the commitment and the spec, and checks it like any other
(:meth:`agents.market.Verifier.learn`): the spec must hash to the chain's spec hash, and an
attestation's root and proof are checked by the contract."""

from __future__ import annotations

from typing import Annotated

import trio
from pydantic import Field

from agents.market import ResultCommitted, SolverJob, Verifier
from axl import AxlError, Message
from compute import InvalidTaskSpec, TaskSpec
from coordination import CoordinationError, JobStatus

from .._errors import AgentError

JobId = Annotated[int, Field(ge=1, lt=2**256)]
Hash32 = Annotated[bytes, Field(min_length=32, max_length=32)]


class CommitmentRequest(Message, tag="axl.catch_up.request"):
    """Ask a job's solver for its commitment and spec (reply: :class:`JobCommitment`)."""

    job_id: JobId


class JobCommitment(Message, tag="axl.catch_up.commitment"):
    """A solver's answer: the spec it trained (empty when it does not know the job) and
    its commitment as published (:class:`agents.market.ResultCommitted`'s fields)."""

    job_id: JobId
    spec: str = Field(default="", max_length=64 * 1024)
    root: Hash32 = b"\0" * 32
    batch_id: int = Field(default=0, ge=0, lt=2**32)
    proof: list[Hash32] = Field(default_factory=list, max_length=64)
    challenge_end: int = Field(default=0, ge=0, lt=2**64)


class CatchingUpVerifier(Verifier):
    """:class:`agents.market.Verifier` that asks solvers for the commitments it missed.
    ``catch_up_interval``: seconds between looks at the chain; a solver that does not answer
    is asked again on later looks, ``tries`` times in all. Counters ``market.caught_up`` and
    ``market.catch_up_failed``."""

    catch_up_interval = 2.0
    request_timeout = 10.0
    tries = 10

    async def on_start(self) -> None:
        await super().on_start()
        self.start_soon(self._catch_up)

    async def _catch_up(self) -> None:
        cursor = self.market.cursor()
        pending: set[int] = set()  # committed a poll ago: the topic had its chance
        missed: dict[int, int] = {}  # job id -> tries left
        while True:
            await trio.sleep(self.catch_up_interval)
            for job_id in pending:
                if not self._heard(job_id):
                    missed.setdefault(job_id, self.tries)
            pending.clear()
            try:
                for event in await self.market.poll(cursor):
                    if event.name == "ResultCommitted":
                        pending.add(int(event["jobId"]))
                    elif event.name == "BatchCommitted":
                        pending.update(int(job_id) for job_id in event["jobIds"])
                for job_id in sorted(missed):
                    missed[job_id] -= 1
                    if self._heard(job_id) or await self.ask_solver(job_id) or not missed[job_id]:
                        del missed[job_id]
            except CoordinationError as exc:  # cut off from the chain: the cursor waits
                self.log.debug("catching up: %s", exc)

    def _heard(self, job_id: int) -> bool:
        seen = self.seen.get(job_id)
        return seen is not None and seen.commitment is not None

    async def ask_solver(self, job_id: int) -> bool:
        """Ask ``job_id``'s solver for what this verifier missed. True when done (learnt, or
        nothing to learn: the job is no longer committed, its solver unknown); False when
        the solver did not answer (worth another try)."""
        view = await self.market.job(job_id)
        if view.status is not JobStatus.COMMITTED or view.solver is None:
            return True
        peer = await self.market.peer_of(view.solver)
        if peer is None:
            return True
        request = CommitmentRequest(job_id=job_id)
        try:
            reply = await self.request(
                peer, request, reply=JobCommitment, timeout=self.request_timeout
            )
        except (AgentError, AxlError) as exc:  # unreachable, timed out, refused: counted, not fatal
            self.log.debug("catching up job %d: %s", job_id, exc)
        else:
            if reply.spec:
                try:
                    spec = TaskSpec.parse(reply.spec)
                except InvalidTaskSpec:
                    spec = None
                if spec is not None:
                    commitment = ResultCommitted(
                        job_id=job_id, root=reply.root, batch_id=reply.batch_id,
                        proof=reply.proof, challenge_end=reply.challenge_end,
                    )  # fmt: skip
                    if await self.learn(commitment, spec):
                        self.stats.inc("market.caught_up")
                        self.say(f"job {job_id}: caught up with its commitment from its solver")
                    return True  # taken, or a spec that is not the job's: asking again is moot
        self.stats.inc("market.catch_up_failed")
        return False


def commitment_of(job: SolverJob | None, job_id: int) -> JobCommitment:
    """A solver's answer to :class:`CommitmentRequest` about ``job`` (None: not its job)."""
    if job is None or job.commitment is None:
        return JobCommitment(job_id=job_id)
    c = job.commitment
    return JobCommitment(
        job_id=job_id, spec=job.spec.model_dump_json(), root=c.root, batch_id=c.batch_id,
        proof=list(c.proof), challenge_end=c.challenge_end,
    )  # fmt: skip

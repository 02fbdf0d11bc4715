"""The built-in :class:`Verifier` role: re-runs a share of committed results, attests the ones
it reproduced (earning the verifier fee), challenges the others with its own root (a bond) and
defends its own run in the dispute game."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import trio

from axl import BlobId, Context, PeerId, blob_id_of
from compute import Dataset, InvalidTaskSpec, Party, TaskSpec, weights_bytes
from coordination import CoordinationError, JobStatus, Role

from .._decorators import on
from ._base import TOKEN, GameParty, Narrator, game_id
from ._chain import spec_hash
from ._data import DATA_TIMEOUT, BlobHolds, fetch_task_dataset
from ._messages import (
    Challenge,
    JobPosted,
    ResultCommitted,
    Settled,
    Verdict,
    Verified,
    VerifyRequest,
)
from ._policies import VerifyPolicy


@dataclass(frozen=True)
class VerifierConfig:
    """A verifier's settings (defaults in brackets).

    ``policy`` decides which results to check [all of them; a random secret salt];
    ``capacity`` re-runs at once, in worker threads [2]; ``stake`` topped up at start
    [100 AI]; ``referee`` is the referee's runtime name or peer id ["referee"];
    ``dispute_timeout`` how long it keeps a disputed run without a verdict [600 s];
    ``data_timeout`` bounds the fetch of a job's dataset blob [120 s] (jobs on a dataset
    need ``blob_store``).

    Adversarial option: ``false_alarm`` challenges results it reproduced, claiming a made-up
    root (and so loses the game and its stake) [False].
    """

    policy: VerifyPolicy = field(default_factory=lambda: VerifyPolicy(10_000, os.urandom(16)))
    capacity: int = 2
    stake: int = 100 * TOKEN
    referee: str | PeerId = "referee"
    dispute_timeout: float = 600.0
    data_timeout: float = DATA_TIMEOUT
    false_alarm: bool = False


@dataclass
class _Seen:
    spec: TaskSpec
    sample_bps: int
    commitment: ResultCommitted | None = None
    reproduced: bool | None = None
    checking: bool = False
    submitter: PeerId | None = None
    solver: PeerId | None = None
    skipped: bool = False  # could not be checked (its dataset unavailable or invalid)
    held: BlobId | None = None


class Verifier(GameParty):
    """Checks results: see :class:`VerifierConfig`. Override :meth:`should_verify` or
    :meth:`rerun` to change one policy. Counters: ``market.checked``, ``market.reproduced``,
    ``market.challenged``, ``market.challenge_failed``, ``market.attested``; on datasets
    ``market.dataset_unavailable``, ``market.dataset_invalid``, ``market.weights_match``,
    ``market.weights_mismatch`` (the announced weights blob is not its own run's)."""

    def __init__(
        self,
        config: VerifierConfig | None = None,
        name: str | None = None,
        *,
        narrator: Narrator | None = None,
    ) -> None:
        super().__init__(name, narrator=narrator)
        self.config = config or VerifierConfig()
        self.seen: dict[int, _Seen] = {}
        self.checked: dict[int, bool] = {}
        """Every job it re-ran: whether it reproduced the committed root."""
        self._slots = trio.CapacityLimiter(self.config.capacity)
        self._disputes: dict[int, float] = {}
        self.holds = BlobHolds()
        """The datasets of the jobs it keeps for a dispute (pinned and offered)."""

    def should_verify(self, job_id: int, root: bytes, sample_bps: int, asked: bool) -> bool:
        """Whether to re-run this result (the config's :class:`VerifyPolicy`)."""
        return self.config.policy.should_verify(job_id, root, sample_bps=sample_bps, asked=asked)

    def rerun(self, spec: TaskSpec, dataset: Dataset | None = None) -> Party:
        """Re-run a job honestly (in a worker thread), as side b of a possible game
        (``dataset``: the job's validated dataset, passed only for a spec that names one)."""
        return Party("b", spec, dataset=dataset)

    def agrees(self, job_id: int, party: Party, root: bytes) -> bool:
        """Whether its re-run ``party`` of ``job_id`` backs the committed ``root``."""
        return party.root == root

    async def send_challenge(self, challenge: Challenge) -> None:
        """Hand a dispute to the referee (once; override to repeat it on a lossy network:
        the referee hears each challenger once)."""
        await self.send(self.config.referee, challenge)

    def busy(self) -> bool:
        """Whether a re-run is under way or a committed result waits for its check."""
        return any(
            seen.checking
            or (
                seen.commitment is not None
                and seen.reproduced is None
                and not seen.skipped
                and self.should_verify(
                    seen.commitment.job_id, seen.commitment.root, seen.sample_bps, asked=False
                )
            )
            for seen in self.seen.values()
        )

    def claimed_root(self, party: Party) -> bytes:
        """The root it claims in a challenge: its own run's (a false alarm claims a made-up
        one, which it cannot defend in the game)."""
        if self.config.false_alarm:
            return hashlib.sha256(b"false alarm" + party.root).digest()
        return party.root

    async def on_start(self) -> None:
        await super().on_start()
        await self.market.ensure_stake(Role.VERIFIER, self.config.stake)
        self.start_soon(self._expire_loop)

    async def _expire_loop(self) -> None:
        while True:
            await trio.sleep(min(self.config.dispute_timeout, 5.0))
            now = trio.current_time()
            for job_id, since in list(self._disputes.items()):
                if now - since > self.config.dispute_timeout:
                    del self._disputes[job_id]
                    self.forget(job_id)
                    self.stats.inc("market.dispute_timeouts")

    @on(JobPosted)
    async def job_posted(self, message: JobPosted, ctx: Context) -> None:
        try:
            spec = TaskSpec.parse(message.spec)
        except InvalidTaskSpec:
            return
        if spec_hash(spec) != message.spec_hash:
            return
        self.seen.setdefault(message.job_id, _Seen(spec, message.sample_bps, submitter=ctx.sender))

    @on(ResultCommitted)
    async def result_committed(self, message: ResultCommitted, ctx: Context) -> None:
        seen = self.seen.get(message.job_id)
        if seen is None or seen.commitment is not None:
            return
        seen.commitment, seen.solver = message, ctx.sender
        if self.should_verify(message.job_id, message.root, seen.sample_bps, asked=False):
            # A task, not this handler: re-runs wait for a slot, and a handler waiting would
            # hold one of the bus's handler slots (then later messages queue or are shed).
            self.start_soon(self._check, message.job_id)

    async def learn(self, commitment: ResultCommitted, spec: TaskSpec, sample_bps: int = 0) -> bool:
        """Take a commitment that did not come over the topic (e.g. asked of its solver after
        a partition) with its job's spec: checked as if both had been published. Whether it
        was taken: not when already known, nor when the spec does not hash to the job's spec
        hash on chain (``market.spec_mismatch``)."""
        if commitment.job_id in self.seen and self.seen[commitment.job_id].commitment is not None:
            return False
        if await self.market.spec_hash_of(commitment.job_id) != spec_hash(spec):
            self.stats.inc("market.spec_mismatch")
            return False
        seen = self.seen.setdefault(commitment.job_id, _Seen(spec, sample_bps))
        seen.commitment = commitment
        self.stats.inc("market.learnt")
        if self.should_verify(commitment.job_id, commitment.root, seen.sample_bps, asked=False):
            self.start_soon(self._check, commitment.job_id)
        return True

    @on(VerifyRequest)
    async def verify_request(self, message: VerifyRequest, ctx: Context) -> Verified:
        seen = self.seen.get(message.job_id)
        if seen is None or seen.commitment is None:
            return Verified(job_id=message.job_id, reproduced=None)
        await self._check(message.job_id)
        return Verified(job_id=message.job_id, reproduced=seen.reproduced)

    async def _check(self, job_id: int) -> None:
        seen = self.seen[job_id]
        if seen.checking or seen.reproduced is not None or seen.commitment is None:
            return
        seen.checking = True  # busy() until the challenge, if any, is on chain and sent
        try:
            await self._check_and_challenge(job_id, seen, seen.commitment)
        finally:
            seen.checking = False

    async def _check_and_challenge(
        self, job_id: int, seen: _Seen, commitment: ResultCommitted
    ) -> None:
        dataset: Dataset | None = None
        if seen.spec.dataset is not None:
            holders = [p for p in (seen.submitter, seen.solver) if p is not None]
            dataset = await fetch_task_dataset(
                self, seen.spec, holders, self.holds, timeout=self.config.data_timeout
            )
            if dataset is None:  # counted; it cannot check this job
                seen.skipped = True
                return
            seen.held = BlobId.parse(seen.spec.dataset.blob)
        async with self._slots:
            if dataset is None:
                party = await self.compute(self.rerun, seen.spec)
            else:
                party = await self.compute(self.rerun, seen.spec, dataset)
        self.stats.inc("market.checked")
        seen.reproduced = self.agrees(job_id, party, commitment.root)
        self.checked[job_id] = seen.reproduced
        if seen.reproduced and not self.config.false_alarm:
            self.stats.inc("market.reproduced")
            if dataset is not None:
                self._check_weights(party, commitment)
                self._release(seen)  # a reproduced job needs no dataset for a dispute
            await self._attest(job_id, commitment)
            return
        if await self.market.spec_hash_of(job_id) != spec_hash(seen.spec):
            self.stats.inc("market.spec_mismatch")  # announced with a spec that is not the job's
            return
        claimed = self.claimed_root(party)
        try:
            await self.market.challenge(job_id, claimed)
        except CoordinationError as exc:  # window closed, same root as the solver's, ...
            self.stats.inc("market.challenge_failed")
            self.log.info("challenge of job %d refused: %s", job_id, exc)
            return
        self.parties[game_id(job_id)] = party
        self._disputes[job_id] = trio.current_time()
        self.stats.inc("market.challenged")
        self.say(f"job {job_id}: root differs, challenged on chain (bond locked)")
        await self.send_challenge(
            Challenge(job_id=job_id, challenger_root=claimed, spec=seen.spec.model_dump_json())
        )

    def _check_weights(self, party: Party, commitment: ResultCommitted) -> None:
        """Whether the announced weights blob is its own run's (content addresses: no fetch);
        a mismatch means the solver serves weights its root does not commit to."""
        mine = str(blob_id_of(weights_bytes(party.result)))
        ok = commitment.weights == mine
        self.stats.inc("market.weights_match" if ok else "market.weights_mismatch")

    def _release(self, seen: _Seen) -> None:
        if seen.held is not None:
            self.holds.release(self, seen.held)
            seen.held = None

    def forget(self, job_id: int) -> None:
        """Drop a job's dispute state and release its dataset."""
        super().forget(job_id)
        seen = self.seen.get(job_id)
        if seen is not None:
            self._release(seen)

    async def _attest(self, job_id: int, commitment: ResultCommitted) -> None:
        """Attest a reproduced result on chain (earns a share of the verifier fee; the lock
        is slashed only if a dispute rejects the result). Skipped when the chain refuses
        (window closed, attesters full, too little free stake)."""
        try:
            await self.market.attest(job_id, commitment.root, commitment.proof)
        except CoordinationError as exc:
            self.stats.inc("market.attest_failed")
            self.log.info("attesting job %d refused: %s", job_id, exc)
            self.say(f"job {job_id}: reproduced the root bit for bit")
            return
        self.stats.inc("market.attested")
        self.say(f"job {job_id}: reproduced the root bit for bit, attested on chain")

    @on(Verdict)
    async def verdict(self, message: Verdict, ctx: Context) -> None:
        if message.job_id in self._disputes:
            view = await self.market.job(message.job_id)  # a hint; the chain decides
            if view.status is not JobStatus.DISPUTED:
                del self._disputes[message.job_id]
                self.forget(message.job_id)
                self.seen.pop(message.job_id, None)

    @on(Settled)
    async def settled(self, message: Settled, ctx: Context) -> None:
        """Paid jobs cannot be challenged any more: forget them (a hint that only frees
        memory; a job still disputed keeps its run)."""
        for job_id in message.job_ids:
            if job_id not in self._disputes:
                seen = self.seen.pop(job_id, None)
                if seen is not None:
                    self._release(seen)

"""The built-in :class:`Solver` role: stakes, offers compute, bids, trains assigned jobs in
worker threads, anchors results in batches, defends them in disputes and settles them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

from axl import BlobError, BlobId, Context, PeerId
from compute import Cheat, Dataset, InvalidTaskSpec, Party, TaskSpec, weights_bytes
from coordination import CoordinationError, JobStatus, Outcome, Role

from .._decorators import on
from ._base import TOKEN, GameParty, Narrator, game_id
from ._chain import Commitment, spec_hash
from ._data import DATA_TIMEOUT, BlobHolds, fetch_task_dataset, names_dataset, peers_of
from ._messages import (
    MARKET_TOPIC,
    Bid,
    ComputeOffer,
    JobAssigned,
    JobPosted,
    JobTaken,
    ResultCommitted,
    Settled,
    Verdict,
)
from ._policies import Batcher, BatchPolicy


@dataclass(frozen=True)
class SolverConfig:
    """A solver's settings (defaults in brackets).

    ``capacity`` jobs train at once, each in a worker thread, and it bids only while a
    slot is free [2]; ``price_per_step`` is asked
    per training step [0]; ``kinds`` are the model kinds it trains [mlp, cnn, transformer];
    ``stake`` is topped up at start [100 AI]; ``offer_interval`` seconds between offers [30];
    ``commits`` batches result anchoring (``commit_batch``) [16 jobs or 0.5 s];
    ``settles`` batches settlement (``settle_batch``) [64 jobs or 1 s]; ``poll_interval`` is
    how often it looks at chain time for closed challenge windows [0.5 s];
    ``bid_ttl`` how long an unanswered bid holds a slot [5 s]; ``backlog`` how many posted
    jobs it remembers to bid on when a slot frees [1024]; ``dispute_timeout`` how long
    it keeps a disputed job's run without a verdict [600 s]; ``data_timeout`` bounds the
    fetch of a job's dataset blob [120 s] (jobs on a dataset need ``blob_store``).

    Adversarial options (tests and the swarm simulation): ``cheat`` trains every job with
    that :class:`compute.Cheat` [None]; ``vanish`` takes jobs and never delivers [False].
    """

    capacity: int = 2
    price_per_step: int = 0
    kinds: tuple[str, ...] = ("mlp", "cnn", "transformer")
    stake: int = 100 * TOKEN
    offer_interval: float = 30.0
    commits: BatchPolicy = field(default_factory=lambda: BatchPolicy(16, 0.5))
    settles: BatchPolicy = field(default_factory=lambda: BatchPolicy(64, 1.0))
    poll_interval: float = 0.5
    bid_ttl: float = 5.0
    backlog: int = 1024
    dispute_timeout: float = 600.0
    data_timeout: float = DATA_TIMEOUT
    cheat: Cheat | None = None
    vanish: bool = False

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.price_per_step < 0 or self.stake < 0:
            raise ValueError("capacity >= 1, price_per_step >= 0 and stake >= 0")


@dataclass
class SolverJob:
    """One job as its solver tracks it."""

    job_id: int
    spec: TaskSpec
    submitter: object
    holders: tuple[PeerId, ...] = ()
    weights: BlobId | None = None
    weights_proof: tuple[bytes, ...] = ()
    held: list[BlobId] = field(default_factory=list)
    trained: bool = False
    commitment: Commitment | None = None
    disputed_at: float | None = None
    done: bool = False


class Solver(GameParty):
    """Sells compute: see :class:`SolverConfig`. Override :meth:`price` (what to ask),
    :meth:`accepts` (which jobs to bid on) or :meth:`train` (how to run a job) to change one
    policy. Counters: ``market.bids``, ``market.trained``, ``market.committed``,
    ``market.settled``, ``market.disputes_won``/``lost``."""

    def __init__(
        self,
        config: SolverConfig | None = None,
        name: str | None = None,
        *,
        narrator: Narrator | None = None,
    ) -> None:
        super().__init__(name, narrator=narrator)
        self.config = config or SolverConfig()
        self.jobs: dict[int, SolverJob] = {}
        self._slots = trio.CapacityLimiter(self.config.capacity)
        self._commits: Batcher[tuple[int, bytes]] = self.config.commits.batcher()
        self._settles: Batcher[int] = self.config.settles.batcher()
        self._bid_on: dict[int, float] = {}
        self._backlog: OrderedDict[int, tuple[JobPosted, PeerId]] = OrderedDict()
        self._queued: set[int] = set()
        self._anchoring = 0
        self.holds = BlobHolds()
        """The dataset and weights blobs its open jobs hold (pinned and offered)."""

    # -- policies users may override ----------------------------------------------------------

    def price(self, job: JobPosted) -> int:
        """What to ask for ``job``: ``price_per_step`` times its steps."""
        return self.config.price_per_step * job.steps

    def accepts(self, job: JobPosted) -> bool:
        """Whether to bid on ``job`` at all: a kind it trains, a payment covering the price,
        and a blob store when the job trains on a dataset."""
        if self.blob_store is None and names_dataset(job.spec):
            return False
        return job.kind in self.config.kinds and job.payment >= self.price(job)

    def free_slots(self) -> int:
        """Capacity left after the jobs in training and the open bids (bids expire after
        ``bid_ttl`` or when the job is taken)."""
        now = trio.current_time()
        for job_id, since in list(self._bid_on.items()):
            if now - since > self.config.bid_ttl:
                del self._bid_on[job_id]  # lost that auction
        return self.config.capacity - self.in_training() - len(self._bid_on)

    def in_training(self) -> int:
        """Assigned jobs not trained yet."""
        return sum(1 for j in self.jobs.values() if not j.trained and not j.done)

    def busy(self) -> bool:
        """Whether work is under way that needs no chain time to progress (training,
        anchoring, settling what is due)."""
        if self.config.vanish:
            return False
        return bool(
            self.in_training() or self._anchoring or len(self._commits) or len(self._settles)
        )

    def train(self, spec: TaskSpec, dataset: Dataset | None = None) -> Party:
        """Run one job (in a worker thread; ``dataset``: the job's validated dataset, passed
        only for a spec that names one); the party keeps what a dispute needs."""
        return Party("a", spec, cheat=self.config.cheat, dataset=dataset)

    def result_root(self, job: SolverJob, party: Party) -> bytes:
        """The root to commit for ``job`` once ``party`` ran it: the run's own root. An
        adversary may commit another (then its run does not back the root and is not kept
        for the game)."""
        return party.root

    # -- life ---------------------------------------------------------------------------------

    async def on_start(self) -> None:
        await super().on_start()
        await self.market.ensure_stake(Role.SOLVER, self.config.stake)
        await self._offer()
        self.start_soon(self._offer_loop)
        self.start_soon(self._anchor_loop)
        self.start_soon(self._defend_loop)

    async def _defend_loop(self) -> None:
        """Watch the chain for challenges of this solver's jobs: a challenged job of a batch
        gets its leaf revealed at once (unrevealed, the solver loses when the dispute ends).
        A chain error is logged and the watch goes on; a reveal that failed is tried again
        every ``poll_interval`` until its leaf is on chain or the dispute is over."""
        cursor = self.market.cursor()
        unrevealed: set[int] = set()
        while True:
            try:
                events = await self.market.poll(cursor)
            except CoordinationError as exc:  # the cursor stays put: nothing is skipped
                self.stats.inc("market.chain_errors")
                self.log.warning("watching for challenges: %s; retrying", exc)
                events = []
            for event in events:
                if event.name != "Challenged":
                    continue
                job = self.jobs.get(int(event["jobId"]))
                if job is None or job.commitment is None:
                    continue
                job.disputed_at = job.disputed_at or trio.current_time()
                if job.commitment.batch_id:
                    unrevealed.add(job.job_id)
            for job_id in sorted(unrevealed):
                if await self._reveal(job_id):
                    unrevealed.discard(job_id)
            await trio.sleep(self.config.poll_interval)

    async def _reveal(self, job_id: int) -> bool:
        """Reveal a challenged job's batch leaf; True once nothing is left to do (revealed,
        or the dispute is over), False to try again after a chain error."""
        job = self.jobs.get(job_id)
        if job is None or job.commitment is None:
            return True
        c = job.commitment
        self._anchoring += 1  # busy() until the leaf is on chain
        try:
            view = await self.market.dispute_view(c.job_id)
            if view.revealed or view.outcome is not Outcome.OPEN:
                return True
            await self.market.reveal(c.job_id, c.root, c.proof)
        except CoordinationError as exc:
            self.stats.inc("market.reveal_failed")
            self.log.warning("reveal of job %d failed (trying again): %s", c.job_id, exc)
            return False
        finally:
            self._anchoring -= 1
        self.stats.inc("market.revealed")
        self.say(f"job {c.job_id}: challenged; revealed its batch leaf")
        return True

    async def _offer(self) -> None:
        await self.publish(
            MARKET_TOPIC,
            ComputeOffer(
                address=self.market.address,
                capacity=self.config.capacity,
                price_per_step=self.config.price_per_step,
                kinds=list(self.config.kinds),
                stake=self.config.stake,
            ),
        )

    async def _offer_loop(self) -> None:
        while True:
            await trio.sleep(self.config.offer_interval)
            await self._offer()

    @on(JobPosted)
    async def job_posted(self, message: JobPosted, ctx: Context) -> None:
        if message.job_id in self.jobs or message.job_id in self._bid_on:
            return
        if not self.accepts(message):
            return
        self._backlog[message.job_id] = (message, ctx.sender)
        while len(self._backlog) > self.config.backlog:
            self._backlog.popitem(last=False)
        await self._fill()

    @on(JobTaken)
    async def job_taken(self, message: JobTaken, ctx: Context) -> None:
        self._backlog.pop(message.job_id, None)
        if self._bid_on.pop(message.job_id, None) is not None:
            await self._fill()

    async def _fill(self) -> None:
        """Bid on the oldest jobs waiting in the backlog while a slot is free."""
        while self._backlog and self.free_slots() > 0:
            _, (job, submitter) = self._backlog.popitem(last=False)
            self._bid_on[job.job_id] = trio.current_time()
            self.stats.inc("market.bids")
            bid = Bid(
                job_id=job.job_id,
                address=self.market.address,
                price=self.price(job),
                stake=self.config.stake,
            )
            await self.send(submitter, bid)

    @on(JobAssigned)
    async def job_assigned(self, message: JobAssigned, ctx: Context) -> None:
        self._bid_on.pop(message.job_id, None)
        if message.job_id in self.jobs:
            return
        try:
            spec = TaskSpec.parse(message.spec)
        except InvalidTaskSpec:
            self.stats.inc("market.bad_assignments")
            return
        self._anchoring += 1  # busy() while the assignment is checked on chain
        try:
            view = await self.market.job(message.job_id)  # the chain, not the message, decides
            ok = (
                view.status is JobStatus.ASSIGNED
                and (view.solver or "").lower() == self.market.address.lower()
                and await self.market.spec_hash_of(message.job_id) == spec_hash(spec)
            )
        finally:
            self._anchoring -= 1
        if not ok:
            self.stats.inc("market.bad_assignments")
            return
        holders = (ctx.sender, *peers_of(message.holders))
        job = self.jobs[message.job_id] = SolverJob(message.job_id, spec, ctx.sender, holders)
        if self.config.vanish:
            self.say(f"job {job.job_id}: taken, and never to be delivered")
            return
        self.start_soon(self._run, job)

    async def _run(self, job: SolverJob) -> None:
        party = await self._train_job(job)
        if party is None:  # counted; the chain refunds the job after its deadline
            job.done = True
            self.say(f"job {job.job_id}: its dataset is unavailable; not delivering")
            await self._fill()
            return
        root = self.result_root(job, party)
        if root == party.root:
            self.parties[game_id(job.job_id)] = party
        self.stats.inc("market.trained")
        note = " (tampered)" if self.config.cheat else ""
        self.say(f"job {job.job_id}: trained {job.spec.steps} steps, root {root.hex()[:12]}…{note}")
        job.trained = True
        self._commits.add((job.job_id, root), trio.current_time())
        await self._fill()

    async def resume(self, held: Mapping[int, TaskSpec]) -> list[int]:
        """Take back jobs assigned to this solver before a restart (``held``: job id -> its
        spec, as the solver kept them): a job still assigned is trained and committed; a
        committed or disputed one has its run rebuilt (deterministic training) to answer the
        referee (a verdict ends it; the submitter settles it otherwise), and is never
        committed again. Returns the ids taken back (not those ended, held already, or not
        this solver's)."""
        if not held:
            return []
        me = self.market.address.lower()
        live: list[int] = []
        for view in await self.market.jobs(list(held)):
            if view.job_id in self.jobs or (view.solver or "").lower() != me:
                continue
            spec = held[view.job_id]
            if view.status is JobStatus.ASSIGNED:  # never committed: train and commit
                self.jobs[view.job_id] = SolverJob(view.job_id, spec, None)
                self.stats.inc("market.resumed")
                self.start_soon(self._run, self.jobs[view.job_id])
            elif view.status in (JobStatus.COMMITTED, JobStatus.DISPUTED):
                job = self.jobs[view.job_id] = SolverJob(view.job_id, spec, None, trained=True)
                if view.status is JobStatus.DISPUTED:
                    job.disputed_at = trio.current_time()
                self.stats.inc("market.rebuilt")
                self.start_soon(self._rebuild, job)
            else:
                continue
            live.append(view.job_id)
        return live

    async def _rebuild(self, job: SolverJob) -> None:
        party = await self._train_job(job)
        if party is None:
            self.say(f"job {job.job_id}: its dataset is unavailable; cannot rebuild the run")
            return
        self.parties[game_id(job.job_id)] = party

    async def _train_job(self, job: SolverJob) -> Party | None:
        """Train a job (fetching and holding its dataset first, and offering the trained
        weights after, when it names one); None when its dataset cannot be had."""
        dataset: Dataset | None = None
        if job.spec.dataset is not None:
            dataset = await fetch_task_dataset(
                self, job.spec, job.holders, self.holds, timeout=self.config.data_timeout
            )
            if dataset is None:
                return None
            job.held.append(BlobId.parse(job.spec.dataset.blob))
        async with self._slots:
            if dataset is None:
                party = await self.compute(self.train, job.spec)
            else:
                party = await self.compute(self.train, job.spec, dataset)
        if dataset is not None:
            self._offer_weights(job, party)
        return party

    def _offer_weights(self, job: SolverJob, party: Party) -> None:
        """Store, hold and offer the trained weights (its final state) with the final leaf's
        proof under the root it commits, so the submitter can check them against the chain."""
        if self.blob_store is None:
            return
        try:
            blob_id = self.blob_store.put_bytes(weights_bytes(party.result))
            self.holds.hold(self, blob_id)
        except BlobError as exc:  # the store is full of pinned blobs
            self.stats.inc("market.weights_unstored")
            self.log.warning("weights of job %d not stored: %s", job.job_id, exc)
            return
        job.weights = blob_id
        job.held.append(blob_id)
        job.weights_proof = tuple(party.tree.proof(job.spec.n_checkpoints - 1))

    def forget(self, job_id: int) -> None:
        """Drop a job's dispute state and release the blobs it held."""
        super().forget(job_id)
        job = self.jobs.get(job_id)
        while job is not None and job.held:
            self.holds.release(self, job.held.pop())

    @property
    def _anchor_period(self) -> float:
        return max(0.01, min(self.config.commits.flush_interval, self.config.poll_interval) / 2)

    async def _anchor_loop(self) -> None:
        while True:
            await trio.sleep(self._anchor_period)
            now = trio.current_time()
            if self._commits.due(now):
                self._anchoring += 1  # busy() until the commitments are published
                try:
                    await self._commit(self._commits.take())
                finally:
                    self._anchoring -= 1
            await self._settle_due()

    async def _commit(self, results: list[tuple[int, bytes]]) -> None:
        try:
            commitments = await self.market.commit(results)
        except CoordinationError as exc:  # e.g. a deadline passed: commit the rest alone
            self.log.warning("commit of %d results failed: %s", len(results), exc)
            if len(results) > 1:
                for result in results:
                    await self._commit([result])
            else:
                job = self.jobs.get(results[0][0])
                if job is not None:
                    job.done = True
                    self.forget(job.job_id)
            return
        for c in commitments:
            job = self.jobs[c.job_id]
            job.commitment = c
            self.stats.inc("market.committed")
            await self.publish(
                MARKET_TOPIC,
                ResultCommitted(
                    job_id=c.job_id,
                    root=c.root,
                    batch_id=c.batch_id,
                    proof=list(c.proof),
                    challenge_end=c.challenge_end,
                    weights=str(job.weights) if job.weights is not None else "",
                    weights_proof=list(job.weights_proof),
                ),
            )

    async def _settle_due(self) -> None:
        waiting = [
            j
            for j in self.jobs.values()
            if j.commitment is not None and not j.done and j.disputed_at is None
        ]
        now_trio = trio.current_time()
        for job in [j for j in self.jobs.values() if j.disputed_at is not None and not j.done]:
            if now_trio - job.disputed_at > self.config.dispute_timeout:  # type: ignore[operator]
                job.done = True  # no verdict came: stop holding the run
                self.forget(job.job_id)
                self.stats.inc("market.dispute_timeouts")
        if not waiting and not len(self._settles):
            return
        chain_now = await self.market.now()
        for job in waiting:
            assert job.commitment is not None
            if chain_now >= job.commitment.challenge_end and job.job_id not in self._queued:
                self._settles.add(job.job_id, now_trio)
                self._queued.add(job.job_id)
        if self._settles.due(now_trio):
            ids = self._settles.take()
            self._queued.difference_update(ids)
            paid = await self._settle(ids)
            for job_id in ids:
                job = self.jobs[job_id]
                if job_id in paid:
                    job.done = True
                    self.forget(job_id)
            if paid:
                self.stats.inc("market.settled", len(paid))
                self.say(f"settled {len(paid)} job(s): {', '.join(map(str, paid[:8]))}")
                await self.publish(MARKET_TOPIC, Settled(job_ids=paid))

    async def _settle(self, ids: list[int]) -> list[int]:
        try:
            paid = await self.market.settle(ids)
        except CoordinationError as exc:
            self.log.warning("settle_batch failed: %s", exc)
            paid = []
        unpaid = [j for j in ids if j not in paid]
        if unpaid:  # settled by someone else, disputed meanwhile, ...: ask the chain
            for view in await self.market.jobs(unpaid):
                job = self.jobs[view.job_id]
                if view.status is JobStatus.DISPUTED:
                    job.disputed_at = job.disputed_at or trio.current_time()
                elif view.status is not JobStatus.COMMITTED:
                    job.done = True
                    self.forget(view.job_id)
        return paid

    @on(Verdict)
    async def verdict(self, message: Verdict, ctx: Context) -> None:
        job = self.jobs.get(message.job_id)
        if job is None or job.done:
            return
        view = await self.market.job(message.job_id)  # the message is a hint; the chain decides
        if view.status is JobStatus.DISPUTED:
            return
        job.done = True
        self.forget(message.job_id)
        won = view.status is JobStatus.SETTLED
        self.stats.inc("market.disputes_won" if won else "market.disputes_lost")

"""The built-in :class:`Solver` role: stakes, offers compute, bids, and trains assigned jobs
in worker threads (taking them back after a restart). Anchoring and settling are
:mod:`._solver_anchor`'s, dispute defence :mod:`._solver_defence`'s, the shared state
:mod:`._solver_state`'s."""

from __future__ import annotations

from collections.abc import Mapping

import trio

from axl import BlobError, BlobId, Context
from compute import Dataset, InvalidTaskSpec, Party, TaskSpec, weights_bytes
from coordination import JobStatus, Role

from .._decorators import on
from ._base import game_id
from ._chain import spec_hash
from ._data import fetch_task_dataset, names_dataset, peers_of
from ._messages import MARKET_TOPIC, Bid, ComputeOffer, JobAssigned, JobPosted, JobTaken
from ._solver_anchor import AnchoringMixin
from ._solver_defence import DefenceMixin
from ._solver_state import SolverJob


class Solver(AnchoringMixin, DefenceMixin):
    """Sells compute: see :class:`SolverConfig`. Override :meth:`price` (what to ask),
    :meth:`accepts` (which jobs to bid on) or :meth:`train` (how to run a job) to change one
    policy. Counters: ``market.bids``, ``market.trained``, ``market.committed``,
    ``market.settled``, ``market.disputes_won``/``lost``."""

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

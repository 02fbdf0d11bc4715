"""A solver's anchoring and settlement: commits trained results to the chain in batches,
publishes each commitment, and settles (in batches) the jobs whose challenge window closed."""

from __future__ import annotations

import trio

from coordination import CoordinationError, JobStatus

from ._messages import MARKET_TOPIC, ResultCommitted, Settled
from ._solver_state import SolverBase


class AnchoringMixin(SolverBase):
    """Commit batches of results, then settle them after the challenge window."""

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

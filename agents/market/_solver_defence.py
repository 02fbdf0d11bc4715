"""A solver's dispute defence: watches the chain for challenges of its jobs, reveals a
challenged job's batch leaf, and closes a disputed job on the verdict (the answers to the
referee's queries are :class:`~agents.market.GameParty`'s)."""

from __future__ import annotations

import trio

from axl import Context
from coordination import CoordinationError, JobStatus, Outcome

from .._decorators import on
from ._messages import Verdict
from ._solver_state import SolverBase


class DefenceMixin(SolverBase):
    """Reveal challenged batch leaves; end a disputed job on its verdict."""

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

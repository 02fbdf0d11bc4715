"""A submitter's auction: escrows and announces jobs, collects bids, and assigns each job
on chain to the best acceptable bidder (announcing again while no bid comes)."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from axl import Context
from coordination import CoordinationError

from .._decorators import on
from ._base import TOKEN
from ._chain import spec_hash
from ._messages import MARKET_TOPIC, Bid, JobAssigned, JobPosted, JobTaken
from ._policies import Candidate
from ._submitter_state import SubmitterBase, Ticket


class AuctionMixin(SubmitterBase):
    """Post, announce and auction jobs; :meth:`choose` is the selection policy."""

    def choose(self, candidates: Sequence[Candidate], payment: int) -> list[Candidate]:
        """Acceptable bids, best first (the config's :class:`SelectionPolicy`)."""
        return self.config.selection.rank(candidates, payment)

    async def _post(self, tickets: Sequence[Ticket]) -> None:
        deadline = self.config.timeouts.deadline(await self.market.now())
        size = self.config.post_batch
        for start in range(0, len(tickets), size):
            chunk = tickets[start : start + size]
            ids = await self.market.post_jobs(
                [spec_hash(t.spec) for t in chunk], [t.payment for t in chunk], deadline
            )
            for ticket, job_id in zip(chunk, ids, strict=True):
                ticket.job_ids.append(job_id)
                ticket.status, ticket.deadline, ticket.solver = "posted", deadline, None
                ticket.solver_address = ""
                ticket.challenge_end = None
                self._by_job[job_id] = ticket
                self.stats.inc("market.posted")
                self.say(f"job {job_id}: escrowed {ticket.payment / TOKEN:.0f} AI")
                await self._announce(ticket)
                self.start_soon(self._auction, ticket, job_id)

    async def _announce(self, ticket: Ticket) -> None:
        spec = ticket.spec
        await self.publish(
            MARKET_TOPIC,
            JobPosted(
                job_id=ticket.job_id,
                spec_hash=spec_hash(spec),
                spec=spec.model_dump_json(),
                kind=spec.model.kind,
                steps=spec.steps,
                payment=ticket.payment,
                deadline=ticket.deadline,
                sample_bps=self.config.sample_bps,
            ),
        )

    @on(Bid)
    async def bid(self, message: Bid, ctx: Context) -> None:
        ticket = self._by_job.get(message.job_id)
        if ticket is None or ticket.job_id != message.job_id or ticket.status != "posted":
            return
        bids = self._bids.setdefault(message.job_id, [])
        if len(bids) < 256:
            bids.append(
                Candidate(ctx.sender, message.address, message.price, message.stake, message.job_id)
            )
            arrived = self._bid_arrived.get(message.job_id)
            if arrived is not None:
                arrived.set()

    async def _auction(self, ticket: Ticket, job_id: int) -> None:
        """Close the auction ``bid_window`` after the first bid and assign the best acceptable
        one; with no (acceptable) bid, announce the job again after waits that double from
        ``bid_window`` up to 64 times it (solvers also keep a backlog of posted jobs)."""
        window = self.config.timeouts.bid_window
        rounds = 0
        while ticket.job_id == job_id and ticket.status == "posted":
            arrived = self._bid_arrived.setdefault(job_id, trio.Event())
            if self._bids.get(job_id):  # bids that came before the auction opened (solvers
                arrived.set()  # bid once per announcement: waiting for more would stall it)
            with trio.move_on_after(window * 2 ** min(rounds, 6)):
                await arrived.wait()
            if arrived.is_set():
                await trio.sleep(window)  # let competing bids in
                self._bid_arrived.pop(job_id, None)
                if await self._assign(ticket, job_id, self._bids.pop(job_id, [])):
                    return
            if self.config.timeouts.expired(ticket.deadline, await self.market.now()):
                self._bid_arrived.pop(job_id, None)
                return  # the watcher refunds it
            rounds += 1
            await self._announce(ticket)

    async def _assign(self, ticket: Ticket, job_id: int, bids: list[Candidate]) -> bool:
        for candidate in self.choose(bids, ticket.payment):
            if str(candidate.peer) in self.caught or candidate.address.lower() in self.caught:
                self.stats.inc("market.bid_refused_caught")
                continue  # it cheated on one of our jobs before
            if not await self.market.bound_to(candidate.address, candidate.peer):
                continue  # an address that is not the bidder's own
            try:
                await self.market.assign(job_id, candidate.address)
            except CoordinationError as exc:  # not staked (any more), deadline passed, ...
                self.stats.inc("market.assign_failed")
                self.log.info(
                    "job %d: assigning to %s failed: %s", job_id, candidate.peer.short(), exc
                )
                continue
            ticket.status, ticket.solver = "assigned", candidate.peer
            ticket.solver_address = candidate.address
            self.stats.inc("market.assigned")
            self.say(f"job {job_id}: assigned to {candidate.peer.short()}")
            await self.publish(MARKET_TOPIC, JobTaken(job_id=job_id))
            await self.send(
                candidate.peer,
                JobAssigned(
                    job_id=job_id,
                    spec=ticket.spec.model_dump_json(),
                    deadline=ticket.deadline,
                    holders=list(self.config.holders) if ticket.spec.dataset else [],
                ),
            )
            return True
        return False

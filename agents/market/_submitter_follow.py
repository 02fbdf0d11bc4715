"""A submitter's following of its jobs on chain: the market contract's events move each
ticket (committed, disputed, paid, refunded and posted again); chain time refunds expired jobs
and settles overdue ones."""

from __future__ import annotations

from contextlib import suppress

import trio

from coordination import ChainEvent, CoordinationError, Outcome

from ._submitter_auction import AuctionMixin
from ._submitter_state import Ticket


class FollowMixin(AuctionMixin):
    """Follow each ticket to payment or refund from the chain's events."""

    async def _watch(self) -> None:
        cursor = self.market.cursor()
        while True:
            for event in await self.market.poll(cursor):
                await self.apply(event)
            await self.check()
            await trio.sleep(self.config.poll_interval)

    async def apply(self, event: ChainEvent) -> None:
        """Bring a ticket in line with one of the market contract's events."""
        if event.contract != "JobMarket":
            return
        if event.name == "BatchCommitted":
            for job_id in event["jobIds"]:
                self._committed(int(job_id), int(event["challengeEnd"]))
            return
        if "jobId" not in event.args:
            return
        job_id = int(event["jobId"])
        ticket = self._by_job.get(job_id)
        if ticket is None or ticket.job_id != job_id or ticket.done.is_set():
            return
        if event.name == "ResultCommitted":
            self._committed(job_id, int(event["challengeEnd"]))
        elif event.name == "Challenged":
            ticket.status = "disputed"
        elif event.name == "DisputeResolved" and event["outcome"] == Outcome.SOLVER_LOSES:
            self._caught(ticket)
        elif event.name == "JobSettled":
            ticket.status = "paid"
            ticket.outcomes.append("paid")
            self.stats.inc("market.paid")
            self._close(ticket)
        elif event.name == "JobRefunded":
            outcome = "rejected" if ticket.status == "disputed" else "timed out"
            ticket.outcomes.append(outcome)
            self.stats.inc("market.refunded")
            if self.config.timeouts.retry(len(ticket.job_ids)):
                self.stats.inc("market.reposted")
                self.say(f"job {job_id}: {outcome}, escrow refunded; posting it again")
                await self._post([ticket])
            else:
                ticket.status = "refunded"
                self._close(ticket)

    def _caught(self, ticket: Ticket) -> None:
        """Its solver lost the dispute: never assign it one of our jobs again."""
        if ticket.solver is not None:
            self.caught.add(str(ticket.solver))
        if ticket.solver_address:
            self.caught.add(ticket.solver_address.lower())
        self.stats.inc("market.solvers_caught")
        self.say(f"job {ticket.job_id}: its solver lost the dispute; its bids are refused")

    def _committed(self, job_id: int, challenge_end: int) -> None:
        ticket = self._by_job.get(job_id)
        if ticket is not None and ticket.job_id == job_id and not ticket.done.is_set():
            ticket.status, ticket.challenge_end = "committed", challenge_end

    async def check(self) -> None:
        """One look at chain time: refund expired jobs, settle overdue ones itself."""
        live = [t for t in self.tickets if not t.done.is_set()]
        if not live:
            return
        now = await self.market.now()
        overdue: list[int] = []
        for ticket in live:
            if ticket.status in ("posted", "assigned"):
                if self.config.timeouts.expired(ticket.deadline, now):
                    with suppress(CoordinationError):  # committed meanwhile: events tell
                        await self.market.refund(ticket.job_id)
            elif (
                ticket.status == "committed"
                and ticket.challenge_end is not None
                and now >= ticket.challenge_end + self.config.settle_grace
            ):
                overdue.append(ticket.job_id)
        if overdue:
            paid = await self.market.settle(overdue)
            if paid:
                self.say(f"settled {len(paid)} job(s) whose solver did not: {paid[:8]}")

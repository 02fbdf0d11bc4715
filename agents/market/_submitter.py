"""The built-in :class:`Submitter` role: escrows jobs, auctions them, assigns the winner on
chain, and follows each job to payment or refund (posting it again after a timeout or a
rejected result, never paying twice: each new escrow follows the refund of the last). This
module holds the role's entry points (submit, resume, adopt, datasets); the auction is
:mod:`._submitter_auction`'s, following jobs :mod:`._submitter_follow`'s, trained weights
:mod:`._submitter_weights`'s, the shared state :mod:`._submitter_state`'s."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from axl import BlobError
from compute import DatasetRef, TaskSpec
from coordination import JobStatus

from ._chain import spec_hash
from ._data import dataset_blob
from ._submitter_follow import FollowMixin
from ._submitter_state import Ticket
from ._submitter_weights import WeightsMixin


class Submitter(FollowMixin, WeightsMixin):
    """Buys compute: ``await submitter.submit(specs)`` returns one :class:`Ticket` per spec;
    ``await ticket.done.wait()`` for the end. See :class:`SubmitterConfig`; override
    :meth:`choose` to change the selection. Jobs may train on the submitter's own data:
    :meth:`dataset` stores and offers a file for ``TaskSpec.dataset`` (needs
    ``blob_store``). Counters: ``market.posted``, ``market.assigned``, ``market.paid``,
    ``market.refunded``, ``market.reposted``, ``market.weights_received``,
    ``market.weights_refused``, ``market.weights_unavailable``."""

    def busy(self) -> bool:
        """Whether a job waits for bids or weights are being fetched (assigned jobs wait on
        their solver, or chain time)."""
        return bool(self._fetching) or any(t.status in ("new", "posted") for t in self.tickets)

    async def on_start(self) -> None:
        await super().on_start()
        self.start_soon(self._watch)

    # -- posting ------------------------------------------------------------------------------

    async def dataset(self, source: bytes | str | Path, *, rows: int) -> DatasetRef:
        """Store a dataset file in ``blob_store`` and return the reference for
        ``TaskSpec.dataset`` (``rows`` samples). A path is copied and hashed in a worker thread
        (bytes are hashed at once: pass a path for a large file). It is pinned and offered
        while a submitted job names it. Raises ``BlobError`` (no store, store full)."""
        if self.blob_store is None:
            raise BlobError(f"{self.name} has no blob store (set blob_store before start)")
        if isinstance(source, bytes):
            blob_id = self.blob_store.put_bytes(source)
        else:
            blob_id = await self.blob_store.put_file_async(source)
        return DatasetRef(blob=str(blob_id), rows=rows)

    async def submit(self, specs: Sequence[TaskSpec], payment: int | None = None) -> list[Ticket]:
        """Escrow one job per spec (``payment`` each, default the config's) and auction them.
        A spec naming a dataset needs its blob in ``blob_store`` (see :meth:`dataset`) and
        valid for the task. Raises :class:`coordination.CoordinationError` when escrowing
        fails, :class:`compute.InvalidDataset` for a missing or invalid dataset."""
        for spec in specs:
            await self._own_dataset(spec)
        tickets = [Ticket(spec, payment or self.config.payment) for spec in specs]
        held = [b for b in map(dataset_blob, specs) if b is not None]
        for blob_id in held:
            self.holds.hold(self, blob_id)
        try:
            await self._post(tickets)
        except BaseException:
            for blob_id in held:  # nothing escrowed: nothing to serve it for
                self.holds.release(self, blob_id, withdraw=True)
            raise
        self.tickets += tickets
        return tickets

    async def resume(self, specs: Sequence[TaskSpec]) -> list[Ticket]:
        """Submit ``specs`` once across restarts (each spec hash distinct): the ones this
        account already escrowed are adopted (:meth:`adopt`) in their chain state, the others
        submitted. One ticket per spec, in order. Raises :class:`CoordinationError`."""
        posted = await self.market.posted_by_me({spec_hash(spec) for spec in specs})
        fresh = [spec for spec in specs if spec_hash(spec) not in posted]
        tickets = {id(t.spec): t for t in await self.submit(fresh)} if fresh else {}
        for spec in specs:
            found = posted.get(spec_hash(spec))
            if found is not None:
                tickets[id(spec)] = await self.adopt(spec, *found)
        return [tickets[id(spec)] for spec in specs]

    async def adopt(self, spec: TaskSpec, payment: int, job_ids: Sequence[int]) -> Ticket:
        """Take over work this account escrowed before (e.g. before a restart) as jobs
        ``job_ids`` (its attempts, oldest first), in the last one's chain state: a posted job
        is auctioned, an assigned, committed or disputed one followed to its end, a refunded
        one posted again while attempts remain. Nothing is escrowed twice."""
        view = await self.market.job(job_ids[-1])
        await self._own_dataset(spec)
        ticket = Ticket(spec, payment, job_ids=sorted(job_ids))
        blob_id = dataset_blob(spec)
        if blob_id is not None:  # offered again while the job lives
            self.holds.hold(self, blob_id)
        self.tickets.append(ticket)
        for job_id in job_ids:
            self._by_job[job_id] = ticket
        ticket.deadline = view.deadline or 0
        ticket.challenge_end = view.challenge_end
        self.stats.inc("market.adopted")
        live = {
            JobStatus.POSTED: "posted",
            JobStatus.ASSIGNED: "assigned",
            JobStatus.COMMITTED: "committed",
            JobStatus.DISPUTED: "disputed",
        }
        if view.status in live:
            ticket.status = live[view.status]
            if view.status is JobStatus.POSTED:
                self.start_soon(self._auction, ticket, ticket.job_id)
        elif view.status is JobStatus.SETTLED:
            ticket.status = "paid"
            self._close(ticket)
        elif self.config.timeouts.retry(len(ticket.job_ids)):  # refunded: post it again
            await self._post([ticket])
        else:
            ticket.status = "refunded"
            self._close(ticket)
        return ticket

"""A submitter's collection of trained weights (jobs on a dataset): fetches the solver's
weights blob after a commitment and keeps it only if it is the final state the committed root
commits to."""

from __future__ import annotations

from axl import BlobError, BlobId, Context
from compute import InvalidDataset, TraceError, fetch_weights
from coordination import CoordinationError

from .._decorators import on
from ._messages import ResultCommitted
from ._submitter_state import SubmitterBase, Ticket


class WeightsMixin(SubmitterBase):
    """Fetch and check each committed job's weights (``fetch_weights``)."""

    @on(ResultCommitted)
    async def result_committed(self, message: ResultCommitted, ctx: Context) -> None:
        ticket = self._by_job.get(message.job_id)
        if (
            ticket is None
            or ticket.job_id != message.job_id
            or ticket.spec.dataset is None
            or ctx.sender != ticket.solver
            or not self.config.fetch_weights
            or message.job_id in self._weights_tried
        ):
            return
        self._weights_tried.add(message.job_id)  # one attempt per commitment
        self._fetching += 1
        self.start_soon(self._collect_weights, ticket, message)

    async def _collect_weights(self, ticket: Ticket, message: ResultCommitted) -> None:
        """Fetch the solver's weights and keep them only if they are the final state its
        committed root commits to (the root checked on chain, the blob against the root)."""
        assert ticket.solver is not None
        blob_id: BlobId | None = None
        try:
            if not await self.market.verify_result(message.job_id, message.root, message.proof):
                raise _Refused("bad_root")
            try:
                blob_id = BlobId.parse(message.weights)
            except BlobError:
                raise _Refused("not_committed") from None
            dataset = await self._own_dataset(ticket.spec)
            ticket.weights = await fetch_weights(
                self.bus,
                ticket.spec,
                blob_id,
                root=message.root,
                proof=message.weights_proof,
                dataset=dataset,
                from_peers=[ticket.solver],
                timeout=self.config.data_timeout,
            )
            ticket.weights_blob = str(blob_id)
            self.stats.inc("market.weights_received")
            self.say(f"job {message.job_id}: trained weights received, bound to the root")
        except (TraceError, InvalidDataset):
            self._refuse(ticket, "not_committed", blob_id)
        except _Refused as refused:
            self._refuse(ticket, refused.reason, blob_id)
        except (BlobError, CoordinationError):  # not served, or the chain could not be read
            ticket.weights_error = "unavailable"
            self.stats.inc("market.weights_unavailable")
        finally:
            self._fetching -= 1

    def _refuse(self, ticket: Ticket, reason: str, blob_id: BlobId | None) -> None:
        ticket.weights_error = reason
        self.stats.inc("market.weights_refused")
        self.say(f"job {ticket.job_id}: refused the solver's weights ({reason})")
        if blob_id is not None and self.blob_store is not None:
            self.blob_store.delete(blob_id)  # not what was paid for: free the room


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

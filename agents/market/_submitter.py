"""The built-in :class:`Submitter` role: escrows jobs, auctions them, assigns the winner on
chain, and follows each job to payment or refund (posting it again after a timeout or a
rejected result, never paying twice: each new escrow follows the refund of the last)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import trio

from axl import BlobError, BlobId, Context, PeerId
from compute import (
    Dataset,
    DatasetRef,
    InvalidDataset,
    State,
    TaskSpec,
    TraceError,
    fetch_weights,
    load_dataset,
)
from coordination import ChainEvent, CoordinationError, JobStatus

from .._decorators import on
from ._base import TOKEN, MarketAgent, Narrator
from ._chain import spec_hash
from ._data import DATA_TIMEOUT, BlobHolds, dataset_blob
from ._messages import (
    MARKET_TOPIC,
    Bid,
    JobAssigned,
    JobPosted,
    JobTaken,
    ResultCommitted,
)
from ._policies import Candidate, SelectionPolicy, TimeoutPolicy


@dataclass(frozen=True)
class SubmitterConfig:
    """A submitter's settings (defaults in brackets): ``payment`` per job [20 AI];
    ``selection`` picks bids [lowest price, then highest stake, then smallest peer id];
    ``timeouts`` [0.5 s of bids, commit within 3,600 chain seconds, 3 attempts];
    ``sample_bps`` asks verifiers to check this share of its jobs [10,000: all];
    ``poll_interval`` between looks at the chain [0.5 s]; ``settle_grace`` chain seconds
    after a challenge window closes before it settles a job itself [300];
    ``post_batch`` jobs escrowed per transaction [64].

    Jobs on a dataset (docs/market.md): ``holders`` are other peers (base58 peer ids) that
    serve its dataset blobs, named to the solver [none: the submitter alone];
    ``fetch_weights`` fetches each job's trained weights and checks them against the
    committed root [True]; ``data_timeout`` bounds that fetch [120 s]."""

    payment: int = 20 * TOKEN
    selection: SelectionPolicy = field(default_factory=SelectionPolicy)
    timeouts: TimeoutPolicy = field(default_factory=TimeoutPolicy)
    sample_bps: int = 10_000
    poll_interval: float = 0.5
    settle_grace: int = 300
    post_batch: int = 64
    holders: tuple[str, ...] = ()
    fetch_weights: bool = True
    data_timeout: float = DATA_TIMEOUT


@dataclass
class Ticket:
    """One piece of work across its attempts. ``status``: posted, assigned, committed,
    disputed, paid (done), refunded (done: no attempt left). ``job_ids`` lists every
    attempt's job id, the current one last.

    For a job on a dataset: ``weights`` is the trained final state once fetched and checked
    against the committed root (``weights_blob`` its blob id); ``weights_error`` says why
    weights were not kept (``not_committed``: they are not what the root commits,
    ``bad_root``: the announced root is not the chain's, ``unavailable``: not served in
    time, or the chain could not be read)."""

    spec: TaskSpec
    payment: int
    job_ids: list[int] = field(default_factory=list)
    status: str = "new"
    solver: PeerId | None = None
    deadline: int = 0
    challenge_end: int | None = None
    outcomes: list[str] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    weights: State | None = None
    weights_blob: str = ""
    weights_error: str = ""

    @property
    def job_id(self) -> int:
        return self.job_ids[-1]


class Submitter(MarketAgent):
    """Buys compute: ``await submitter.submit(specs)`` returns one :class:`Ticket` per spec;
    ``await ticket.done.wait()`` for the end. See :class:`SubmitterConfig`; override
    :meth:`choose` to change the selection. Jobs may train on the submitter's own data:
    :meth:`dataset` stores and offers a file for ``TaskSpec.dataset`` (needs
    ``blob_store``). Counters: ``market.posted``, ``market.assigned``, ``market.paid``,
    ``market.refunded``, ``market.reposted``, ``market.weights_received``,
    ``market.weights_refused``, ``market.weights_unavailable``."""

    def __init__(
        self,
        config: SubmitterConfig | None = None,
        name: str | None = None,
        *,
        narrator: Narrator | None = None,
    ) -> None:
        super().__init__(name, narrator=narrator)
        self.config = config or SubmitterConfig()
        self.tickets: list[Ticket] = []
        self._by_job: dict[int, Ticket] = {}
        self._bids: dict[int, list[Candidate]] = {}
        self._bid_arrived: dict[int, trio.Event] = {}
        self.holds = BlobHolds()
        """The dataset blobs of its open jobs (pinned and offered)."""
        self._datasets: dict[tuple[BlobId, str], Dataset] = {}
        self._fetching = 0
        self._weights_tried: set[int] = set()

    def choose(self, candidates: Sequence[Candidate], payment: int) -> list[Candidate]:
        """Acceptable bids, best first (the config's :class:`SelectionPolicy`)."""
        return self.config.selection.rank(candidates, payment)

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

    async def _own_dataset(self, spec: TaskSpec) -> Dataset | None:
        """The spec's dataset from this submitter's own store, validated for the task (kept
        to check weights against); None for generated data."""
        blob_id = dataset_blob(spec)
        if blob_id is None:
            return None
        key = (blob_id, spec.model.model_dump_json())
        if key not in self._datasets:
            if self.blob_store is None or not self.blob_store.has(blob_id):
                raise InvalidDataset(f"{self.name} does not hold the dataset blob {blob_id}")
            data = await self.blob_store.read_bytes_async(blob_id, max_size=blob_id.size)
            self._datasets[key] = await trio.to_thread.run_sync(load_dataset, data, spec)
        return self._datasets[key]

    def _close(self, ticket: Ticket) -> None:
        """A ticket is done: release its dataset (unpinned, no longer offered)."""
        ticket.done.set()
        blob_id = dataset_blob(ticket.spec)
        if blob_id is not None:
            self.holds.release(self, blob_id, withdraw=True)

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
            bids.append(Candidate(ctx.sender, message.address, message.price, message.stake))
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

    # -- the trained weights of jobs on a dataset ---------------------------------------------

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

    # -- following jobs: the chain's events are the truth; messages only wake us up ----------

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


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

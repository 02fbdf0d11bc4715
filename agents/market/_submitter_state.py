"""A submitter's shared state: its settings (:class:`SubmitterConfig`), one piece of work
across its attempts (:class:`Ticket`), and the base class holding what its parts (posting,
the auction, following jobs on chain, collecting trained weights) share."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from axl import BlobId, PeerId
from compute import Dataset, InvalidDataset, State, TaskSpec, load_dataset

from ._base import TOKEN, MarketAgent, Narrator
from ._data import DATA_TIMEOUT, BlobHolds, dataset_blob
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
    solver_address: str = ""
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


class SubmitterBase(MarketAgent):
    """The state a :class:`~agents.market.Submitter`'s parts share (see
    :class:`SubmitterConfig`), its own datasets, and closing a ticket."""

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
        self.caught: set[str] = set()
        """Solvers that lost a dispute on one of its jobs (peer ids and lowercase chain
        addresses): their bids are refused from then on."""

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

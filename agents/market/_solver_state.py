"""A solver's shared state: its settings (:class:`SolverConfig`), its record of one job
(:class:`SolverJob`) and the base class that holds what its parts (bidding and training,
anchoring and settling, dispute defence) all read and write."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import trio

from axl import BlobId, PeerId
from compute import Cheat, TaskSpec

from ._base import TOKEN, GameParty, Narrator
from ._chain import Commitment
from ._data import DATA_TIMEOUT, BlobHolds
from ._messages import JobPosted
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


class SolverBase(GameParty):
    """The state a :class:`~agents.market.Solver`'s parts share (see :class:`SolverConfig`)."""

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

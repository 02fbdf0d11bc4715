"""The market's decisions as sans-IO policy objects: no clocks, no IO, no randomness of their
own. Roles hold one of each in their config; subclass one to change a single decision."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from axl import PeerId

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One bid as the selection policy sees it (``job_id``: the job it bids for)."""

    peer: PeerId
    address: str
    price: int
    stake: int
    job_id: int = 0

    def tie_draw(self) -> bytes:
        """Its place among equal bids for its job: a hash of the job and the peer id, so
        ties fall to a different peer from job to job."""
        return hashlib.sha256(b"axl-tie/%d/" % self.job_id + self.peer.raw).digest()


@dataclass(frozen=True)
class SelectionPolicy:
    """Which bid wins a job: the lowest price, then the highest stake, then the smallest
    :meth:`Candidate.tie_draw` (a hash of the job id and the peer id) — deterministic and
    independent of arrival order. Equal bids win in turn from job to job: a peer id ground to
    sort first (keys are cheap) does not win every tie, as it did when ties went to the
    smallest peer id. Bids above the payment or with less than ``min_stake`` are never
    chosen."""

    min_stake: int = 0

    def key(self, candidate: Candidate) -> tuple[int, int, bytes]:
        """The sort key: smaller is better."""
        return (candidate.price, -candidate.stake, candidate.tie_draw())

    def rank(self, candidates: Sequence[Candidate], payment: int) -> list[Candidate]:
        """Acceptable candidates, best first (one entry per peer: its best bid)."""
        best: dict[PeerId, Candidate] = {}
        for c in candidates:
            if c.price > payment or c.stake < self.min_stake:
                continue
            held = best.get(c.peer)
            if held is None or self.key(c) < self.key(held):
                best[c.peer] = c
        return sorted(best.values(), key=self.key)

    def choose(self, candidates: Sequence[Candidate], payment: int) -> Candidate | None:
        """The winning candidate, or None when no bid is acceptable."""
        ranked = self.rank(candidates, payment)
        return ranked[0] if ranked else None


@dataclass(frozen=True)
class TimeoutPolicy:
    """When a job times out. ``commit_timeout`` (chain seconds) sets the on-chain deadline;
    after it a job without a committed result is refunded and, while fewer than
    ``max_attempts`` were made, posted again (a new escrow: the submitter never pays twice,
    the refund comes first). ``bid_window`` (seconds) is how long bids are collected."""

    bid_window: float = 0.5
    commit_timeout: int = 3_600
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.commit_timeout < 1 or self.max_attempts < 1 or not self.bid_window >= 0:
            raise ValueError("commit_timeout and max_attempts must be >= 1, bid_window >= 0")

    def deadline(self, chain_now: int) -> int:
        """The commit deadline of a job posted at chain time ``chain_now``."""
        return chain_now + self.commit_timeout

    def expired(self, deadline: int, chain_now: int) -> bool:
        """Whether a job due at ``deadline`` may be refunded now (the contract needs
        ``now > deadline``)."""
        return chain_now > deadline

    def retry(self, attempts: int) -> bool:
        """Whether to post a job again after ``attempts`` failed attempts."""
        return attempts < self.max_attempts


@dataclass(frozen=True)
class VerifyPolicy:
    """Whether a verifier checks a result: always when asked; else a pseudo-random draw from
    the verifier's secret ``salt``, the job and the root, true for ``share_bps`` of 10,000
    (or the job's own ``sample_bps`` when higher). Solvers cannot predict which results are
    checked; the same verifier always decides the same way for the same result."""

    share_bps: int = 10_000
    salt: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.share_bps <= 10_000:
            raise ValueError("share_bps must be in [0, 10000]")

    def draw(self, job_id: int, root: bytes) -> int:
        """A uniform number in [0, 10000) for this result."""
        digest = hashlib.sha256(
            b"axl-verify\0" + self.salt + job_id.to_bytes(32, "big") + root
        ).digest()
        return int.from_bytes(digest[:8], "big") % 10_000

    def should_verify(
        self, job_id: int, root: bytes, *, sample_bps: int = 0, asked: bool = False
    ) -> bool:
        """Whether to re-run this result."""
        if asked:
            return True
        return self.draw(job_id, root) < max(self.share_bps, min(sample_bps, 10_000))


@dataclass(frozen=True)
class BatchPolicy:
    """When to anchor a batch: once ``max_size`` items wait, or ``flush_interval`` seconds
    after the oldest waiting item arrived."""

    max_size: int = 16
    flush_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.max_size < 1 or not self.flush_interval >= 0:
            raise ValueError("max_size must be >= 1 and flush_interval >= 0")

    def batcher(self) -> Batcher[T]:
        """A fresh queue following this policy."""
        return Batcher(self)


@dataclass
class Batcher(Generic[T]):
    """A FIFO of items waiting to be anchored, following a :class:`BatchPolicy` (sans-IO: the
    caller passes the time)."""

    policy: BatchPolicy
    _items: list[tuple[float, T]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, now: float) -> None:
        """Queue ``item`` that arrived at ``now``."""
        self._items.append((now, item))

    def due(self, now: float) -> bool:
        """Whether a batch should be taken now."""
        if not self._items:
            return False
        if len(self._items) >= self.policy.max_size:
            return True
        return now - self._items[0][0] >= self.policy.flush_interval

    def take(self) -> list[T]:
        """The oldest items, at most ``max_size``, in arrival order (removed from the queue)."""
        size = self.policy.max_size
        taken, self._items = self._items[:size], self._items[size:]
        return [item for _, item in taken]

    def put_back(self, items: Sequence[T], now: float) -> None:
        """Return items whose anchoring failed to the front of the queue."""
        self._items[:0] = [(now, item) for item in items]

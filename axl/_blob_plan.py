"""The fetch plan, sans-IO: which chunk to ask which holder for; every chunk checked on arrival.

Nothing here does I/O, so it is tested directly with hypothesis.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from ._blob_id import BlobId, checked_leaf

H = TypeVar("H", bound=Hashable)


class FetchPlan(Generic[H]):
    """Which chunks are missing, who is fetching which, who is banned; checks each chunk.

    ``claim(holder)`` hands out the lowest missing chunk no one is fetching; ``deliver``
    verifies a chunk against the root: a chunk that fails, or that the holder was not asked
    for, bans the holder for this blob and returns its outstanding chunks to the pool, as does
    ``release`` (a dropped or stalled stream) without the ban.
    """

    def __init__(self, blob_id: BlobId, have: Iterable[int] = ()) -> None:
        self.blob_id = blob_id
        held = set(have)
        self._missing = [i for i in range(blob_id.n_chunks) if i not in held]
        heapq.heapify(self._missing)
        self._in_flight: dict[int, H] = {}
        self._by_holder: dict[H, set[int]] = {}
        self.received = len(held)
        self.banned: dict[H, str] = {}

    @property
    def done(self) -> bool:
        return self.received == self.blob_id.n_chunks

    @property
    def remaining(self) -> int:
        return self.blob_id.n_chunks - self.received

    def outstanding(self, holder: H) -> int:
        return len(self._by_holder.get(holder, ()))

    def claim(self, holder: H) -> int | None:
        """The next chunk for ``holder`` to send, or None (nothing unclaimed, or banned)."""
        if holder in self.banned or not self._missing:
            return None
        index = heapq.heappop(self._missing)
        self._in_flight[index] = holder
        self._by_holder.setdefault(holder, set()).add(index)
        return index

    def expects(self, holder: H, index: int) -> bool:
        """Whether ``holder`` was asked for chunk ``index`` and has not delivered it."""
        return self._in_flight.get(index) == holder

    def deliver(self, holder: H, index: int, data: bytes | memoryview, proof: bytes) -> bool:
        """Check a chunk from ``holder``; True when it is accepted (write it), False when the
        holder is now banned."""
        if not self.expects(holder, index):
            self.ban(holder, "unrequested_chunk")
            return False
        return self.settle(holder, index, checked_leaf(self.blob_id, index, data, proof))

    def settle(self, holder: H, index: int, leaf: bytes | None) -> bool:
        """Conclude an expected chunk whose check gave ``leaf`` (None: it failed, and the
        holder is banned). For callers that check chunks off the event loop."""
        if not self.expects(holder, index):
            self.ban(holder, "unrequested_chunk")
            return False
        if leaf is None:
            self.ban(holder, "wrong_chunk")
            return False
        del self._in_flight[index]
        self._by_holder[holder].discard(index)
        self.received += 1
        return True

    def release(self, holder: H) -> None:
        """Return the holder's outstanding chunks to the pool."""
        for index in self._by_holder.pop(holder, ()):
            del self._in_flight[index]
            heapq.heappush(self._missing, index)

    def ban(self, holder: H, reason: str) -> None:
        """Give up on ``holder`` for this blob."""
        self.release(holder)
        self.banned.setdefault(holder, reason)

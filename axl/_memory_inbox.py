"""The memory network's delivery queue: a bounded inbox whose frames become receivable at
their due time on trio's clock (latency applied on the receiving side, so
``trio.testing.MockClock`` makes simulated time free), yielding only every few frames."""

from __future__ import annotations

import heapq
import itertools
import math

import trio

from ._errors import PeerUnreachable, TransportClosed
from ._transport import InboundFrame

_YIELD_EVERY = 64


async def _cheap_checkpoint(owner: object, counter: str) -> None:
    """A cancellation point on every call, but a scheduling point only every
    ``_YIELD_EVERY`` calls: a hot queue then moves frames in batches instead of paying a task
    switch per frame, and other tasks still run regularly."""
    count = getattr(owner, counter) + 1
    if count >= _YIELD_EVERY:
        setattr(owner, counter, 0)
        await trio.lowlevel.checkpoint()
    else:
        setattr(owner, counter, count)
        await trio.lowlevel.checkpoint_if_cancelled()


class _DelayedInbox:
    """A bounded queue whose items become available at a due time on trio's clock."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._heap: list[tuple[float, int, InboundFrame]] = []
        self._order = itertools.count()
        self._has_items = trio.lowlevel.ParkingLot()
        self._has_space = trio.lowlevel.ParkingLot()
        # the deadlines of the receivers waiting for an item that is not due yet (or for any
        # item: deadline +inf); a push moves them to its due time instead of waking them
        self._waiting: list[trio.CancelScope] = []
        self.closed = False
        self._fast_puts = 0
        self._fast_gets = 0

    def __len__(self) -> int:
        return len(self._heap)

    def _push(self, item: InboundFrame, delay: float) -> None:
        due = trio.current_time() + delay if delay else -math.inf
        heapq.heappush(self._heap, (due, next(self._order), item))
        if not delay:
            if self._has_items:
                self._has_items.unpark_all()
            return
        for scope in self._waiting:  # woken at the item's due time, not now and again then
            if due < scope.deadline:
                scope.deadline = due

    def put_nowait(self, item: InboundFrame, delay: float) -> bool:
        if self.closed or len(self._heap) >= self._capacity:
            return False
        self._push(item, delay)
        return True

    async def put(self, item: InboundFrame, delay: float) -> None:
        while len(self._heap) >= self._capacity and not self.closed:
            await self._has_space.park()
        if self.closed:
            raise PeerUnreachable("the peer closed its transport")
        self._push(item, delay)
        await _cheap_checkpoint(self, "_fast_puts")

    async def get(self) -> InboundFrame:
        while True:
            if self.closed:
                raise TransportClosed("transport closed")
            if self._heap:
                due = self._heap[0][0]
                wait = due - trio.current_time() if due != -math.inf else 0.0
                if wait <= 0:
                    item = heapq.heappop(self._heap)[2]
                    if self._has_space:
                        self._has_space.unpark()
                    await _cheap_checkpoint(self, "_fast_gets")
                    return item
                await self._wait(due)
            else:
                await self._wait(math.inf)

    async def _wait(self, deadline: float) -> None:
        """Park until an undelayed item or :meth:`close` wakes this receiver, or until
        ``deadline`` (which a delayed item due earlier moves up)."""
        with trio.CancelScope(deadline=deadline) as scope:
            self._waiting.append(scope)
            try:
                await self._has_items.park()
            finally:
                self._waiting.remove(scope)

    async def get_batch(self, max_items: int) -> list[InboundFrame]:
        """The next due item and the items due behind it, ``max_items`` at most."""
        batch = [await self.get()]
        heap = self._heap
        if heap and len(batch) < max_items:
            now = trio.current_time()
            while heap and len(batch) < max_items and heap[0][0] <= now:
                batch.append(heapq.heappop(heap)[2])
            if self._has_space:
                self._has_space.unpark_all()
        return batch

    def close(self) -> None:
        self.closed = True
        self._heap.clear()
        self._has_items.unpark_all()
        self._has_space.unpark_all()

"""A mutex for py-libp2p's per-frame critical sections that costs nothing when it is free.

``trio.Lock.acquire`` always yields to the scheduler (a checkpoint), contended or not, and
registers a parking-lot breaker for its owner. py-libp2p takes such a lock about 26 times per
delivered topic message (yamux's stream table, per-stream windows, its frame writer, the TCP
stream's reader and writer), almost never contended: each one a trip through trio's run loop.

:class:`FastLock` takes a free lock without yielding and parks on trio's ``ParkingLot`` only
when it is held, handing ownership straight to the first waiter on release (FIFO, like
``trio.Lock``). A waiter cancelled while parked leaves the queue without the lock. It supports
what py-libp2p uses (``async with``, ``locked()``); the critical sections it guards still
reach a real checkpoint through the I/O they wrap (a socket send or receive always yields).
"""

from __future__ import annotations

from types import TracebackType

import trio


class FastLock:
    """A FIFO mutex for trio tasks whose uncontended acquire does not yield."""

    __slots__ = ("_held", "_lot")

    def __init__(self) -> None:
        self._held = False
        self._lot = trio.lowlevel.ParkingLot()

    def locked(self) -> bool:
        """Whether the lock is held."""
        return self._held

    def acquire_nowait(self) -> None:
        """Take the lock if it is free and nobody waits; else raise ``trio.WouldBlock``."""
        if self._held or self._lot:
            raise trio.WouldBlock
        self._held = True

    async def acquire(self) -> None:
        """Take the lock, waiting (FIFO) while another task holds it."""
        if not self._held and not self._lot:
            self._held = True
            return
        await self._lot.park()  # on wake-up the releaser has handed the lock over

    def release(self) -> None:
        """Release the lock, handing it to the longest waiter if there is one."""
        if not self._held:
            raise RuntimeError("release of a FastLock that is not held")
        if self._lot:
            self._lot.unpark(count=1)  # stays held: ownership passes to the woken task
        else:
            self._held = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

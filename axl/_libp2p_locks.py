"""A mutex for py-libp2p's per-frame critical sections that costs nothing when it is free.

``trio.Lock.acquire`` always yields to the scheduler (a checkpoint), contended or not, and
registers a parking-lot breaker for its owner. py-libp2p takes such a lock about 26 times per
delivered topic message (yamux's stream table, per-stream windows, its frame writer, the TCP
stream's reader and writer), almost never contended: each one a trip through trio's run loop.

:class:`FastLock` takes a free lock without yielding and parks on trio's ``ParkingLot`` only
when it is held, handing ownership straight to the first waiter on release (FIFO, like
``trio.Lock``). A waiter cancelled while parked leaves the queue without the lock; a task
re-acquiring a lock it holds gets ``RuntimeError`` (as from ``trio.Lock``), not a deadlock.
A free acquire is no cancellation point either: code that must not start once cancelled
checks first (the Noise session does before sealing a message: see ``_libp2p_noise``). It supports
what py-libp2p uses (``async with``, ``locked()``); the critical sections it guards still
reach a real checkpoint through the I/O they wrap (a socket send or receive always yields).
"""

from __future__ import annotations

from types import TracebackType

import trio

_HANDED_OVER = object()


class FastLock:
    """A FIFO mutex for trio tasks whose uncontended acquire does not yield."""

    __slots__ = ("_lot", "_owner")

    def __init__(self) -> None:
        self._owner: object = None
        self._lot = trio.lowlevel.ParkingLot()

    def locked(self) -> bool:
        """Whether the lock is held."""
        return self._owner is not None

    def acquire_nowait(self) -> None:
        """Take the lock if it is free and nobody waits; else raise ``trio.WouldBlock``.
        Raises ``RuntimeError`` if the calling task holds it already (as ``trio.Lock``)."""
        task = trio.lowlevel.current_task()
        if self._owner is task:
            raise RuntimeError("attempt to re-acquire an already held FastLock")
        if self._owner is not None or self._lot:
            raise trio.WouldBlock
        self._owner = task

    async def acquire(self) -> None:
        """Take the lock, waiting (FIFO) while another task holds it. Raises ``RuntimeError``
        if the calling task holds it already (as ``trio.Lock``; waiting would deadlock)."""
        task = trio.lowlevel.current_task()
        owner = self._owner
        if owner is None and not self._lot:
            self._owner = task
            return
        if owner is task:
            raise RuntimeError("attempt to re-acquire an already held FastLock")
        await self._lot.park()  # on wake-up the releaser has handed the lock over
        self._owner = task

    def release(self) -> None:
        """Release the lock, handing it to the longest waiter if there is one."""
        if self._owner is not trio.lowlevel.current_task():
            raise RuntimeError("can't release a FastLock you don't own")
        if self._lot:
            self._owner = _HANDED_OVER  # held until the woken task records itself
            self._lot.unpark(count=1)
        else:
            self._owner = None

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

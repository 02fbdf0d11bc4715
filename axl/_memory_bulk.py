"""Bulk streams of the memory transport: bounded in-process byte pipes that can be cut."""

from __future__ import annotations

from collections import deque

import trio

from ._errors import PeerUnreachable
from ._identity import PeerId

PIECE = 64 * 1024
WINDOW_PIECES = 16


class _Pipe:
    """One direction: at most ``WINDOW_PIECES`` pieces of at most ``PIECE`` bytes in flight."""

    def __init__(self) -> None:
        self.pieces: deque[bytes] = deque()
        self.eof = False
        self.changed = trio.lowlevel.ParkingLot()


class MemoryConnection:
    """Both directions of one bulk stream; ``cut()`` breaks it for both ends at once."""

    def __init__(self, a: PeerId, b: PeerId) -> None:
        self.peers = (a, b)
        self.pipes = (_Pipe(), _Pipe())
        self.broken = False

    def cut(self) -> None:
        self.broken = True
        for pipe in self.pipes:
            pipe.changed.unpark_all()

    def ends(self) -> tuple[MemoryBulkStream, MemoryBulkStream]:
        return MemoryBulkStream(self, 0), MemoryBulkStream(self, 1)


class MemoryBulkStream:
    """One end of a :class:`MemoryConnection` (implements ``BulkStream``)."""

    def __init__(self, connection: MemoryConnection, side: int) -> None:
        self._connection = connection
        self._out = connection.pipes[side]
        self._in = connection.pipes[1 - side]
        self._closed = False

    def _check(self) -> None:
        if self._connection.broken:
            raise PeerUnreachable("the bulk stream was cut")
        if self._closed:
            raise trio.ClosedResourceError("this end of the bulk stream is closed")

    async def send_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(data), PIECE):
            while True:
                self._check()
                if self._out.eof:
                    raise PeerUnreachable("the peer closed the bulk stream")
                if len(self._out.pieces) < WINDOW_PIECES:
                    break
                await self._out.changed.park()
            self._out.pieces.append(bytes(view[start : start + PIECE]))
            self._out.changed.unpark_all()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int) -> bytes:
        while True:
            self._check()
            if self._in.pieces:
                piece = self._in.pieces.popleft()
                if len(piece) > max_bytes:
                    self._in.pieces.appendleft(piece[max_bytes:])
                    piece = piece[:max_bytes]
                self._in.changed.unpark_all()
                await trio.lowlevel.checkpoint()
                return piece
            if self._in.eof:
                await trio.lowlevel.checkpoint()
                return b""
            await self._in.changed.park()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.eof = True
            self._in.eof = True
            self._in.pieces.clear()
            self._out.changed.unpark_all()
            self._in.changed.unpark_all()
        await trio.lowlevel.checkpoint()

"""Read-ahead on py-libp2p's TCP streams: one socket read per burst, not two per message.

Noise reads every transport message in two reads of the TCP stream (its 2-byte length, then
the body), and py-libp2p's ``TrioTCPStream.read(n)`` passes each to the socket as it is: two
``recv`` system calls, two lock round trips and two trips through trio's I/O wait per Noise
message, however many messages the socket already holds. :func:`install_read_ahead` makes a
read that asks for less than 64 KiB take up to 64 KiB from the socket and keeps the rest for
the next reads of the same stream, which return at once. Every read still goes through the
stream object (the only reader of its socket), so no byte is lost or reordered; ends of
stream and errors surface when the buffer is empty, as before. What is held is at most 64 KiB
per connection (bytes the kernel's socket buffer held before), so the connection cap bounds it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

READ_AHEAD = 1 << 16
_INSTALLED = "_axl_read_ahead"


def install_read_ahead() -> None:
    """Patch py-libp2p's ``TrioTCPStream.read`` once per process (idempotent)."""
    from libp2p.io.trio import TrioTCPStream

    if getattr(TrioTCPStream, _INSTALLED, False):
        return
    TrioTCPStream.read = read_ahead(TrioTCPStream.read)  # type: ignore[method-assign,assignment]
    setattr(TrioTCPStream, _INSTALLED, True)


def read_ahead(
    original: Callable[[Any, int | None], Awaitable[bytes]],
) -> Callable[[Any, int | None], Awaitable[bytes]]:
    """``original`` (a stream's ``read(n)``) with a per-stream read-ahead buffer."""

    async def read(self: Any, n: int | None = None) -> bytes:
        ahead: bytearray | None = getattr(self, "_axl_ahead", None)
        if ahead:
            if n is None or n < 0 or n >= len(ahead):
                data = bytes(ahead)
                ahead.clear()
                return data
            if n == 0:
                return b""
            data = bytes(ahead[:n])
            del ahead[:n]
            return data
        if n is None or n <= 0 or n >= READ_AHEAD:
            return await original(self, n)
        data = await original(self, READ_AHEAD)
        if len(data) <= n:
            return data
        if ahead is None:
            ahead = bytearray()
            self._axl_ahead = ahead
        ahead += memoryview(data)[n:]
        return data[:n]

    return read


_FAST_LOCKS = "_axl_fast_locks"


def install_fast_locks() -> None:
    """Give py-libp2p's ``TrioTCPStream`` :class:`axl._libp2p_locks.FastLock` read and write
    locks: free, they no longer yield (the socket call they guard always does). Idempotent."""
    from libp2p.io.trio import TrioTCPStream

    from ._libp2p_locks import FastLock

    if getattr(TrioTCPStream, _FAST_LOCKS, False):
        return
    original = TrioTCPStream.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.read_lock = FastLock()
        self.write_lock = FastLock()

    TrioTCPStream.__init__ = init  # type: ignore[method-assign]
    setattr(TrioTCPStream, _FAST_LOCKS, True)

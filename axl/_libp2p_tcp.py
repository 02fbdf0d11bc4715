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

Reads that reach the socket skip trio's layers (``SocketStream.receive_some`` → error
translation → the socket wrapper's ``_nonblocking_helper`` → its try-then-wait context
manager: ~a dozen Python calls per read around one ``recv``): :func:`direct_read` waits for
the socket to be readable, then calls the stdlib socket's ``recv`` itself. trio tries the
``recv`` first and waits only when it fails, but a reader that takes up to 64 KiB at a time
leaves the socket empty, so that first try failed (``EAGAIN``, an exception raised and
caught) on nearly every read (measured: every read of ``benchmarks.gossip_cost``). Only after
a ``recv`` that filled its whole buffer (more is probably queued: bulk transfers) is the socket
tried first, as trio does. Semantics stay trio's (a cancellation point before any byte is
taken; every read yields) and outcomes py-libp2p's (a reset or broken connection raises
``ConnectionClosedError``, a socket closed locally reads as end of stream).
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from typing import Any

import trio

READ_AHEAD = 1 << 16
_INSTALLED = "_axl_read_ahead"


def install_read_ahead() -> None:
    """Patch py-libp2p's ``TrioTCPStream.read`` once per process (idempotent)."""
    from libp2p.io.trio import TrioTCPStream

    if getattr(TrioTCPStream, _INSTALLED, False):
        return
    original = TrioTCPStream.read
    TrioTCPStream.read = read_ahead(direct_read(original))  # type: ignore[method-assign,assignment]
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


def direct_read(
    original: Callable[[Any, int | None], Awaitable[bytes]],
) -> Callable[[Any, int | None], Awaitable[bytes]]:
    """``original`` (``TrioTCPStream.read``) reading the stdlib socket under a plain
    ``trio.SocketStream`` itself; any other stream goes to ``original``."""
    from libp2p.io.exceptions import ConnectionClosedError

    socket_stream = trio.SocketStream
    wait_readable = trio.lowlevel.wait_readable
    checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
    shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint

    async def read(self: Any, n: int | None = None) -> bytes:
        stream = self.stream
        # trio's socket wraps the stdlib one (``_sock``); any other stream: py-libp2p's read
        sock: Any = getattr(stream.socket, "_sock", None) if type(stream) is socket_stream else None
        if sock is None:
            return await original(self, n)
        if n == 0:
            return b""
        size = READ_AHEAD if n is None or n < 0 else n
        async with self.read_lock:
            try:
                if sock.fileno() == -1:
                    return b""  # closed locally: end of stream (as py-libp2p)
                if getattr(self, "_axl_filled", False):
                    # The last recv filled its buffer: more is probably queued, try it first
                    # (as trio does), with a cancellation point before and a yield after.
                    await checkpoint_if_cancelled()
                    try:
                        data: bytes = sock.recv(size)
                    except BlockingIOError:
                        pass
                    else:
                        self._axl_filled = len(data) == size
                        await shielded_checkpoint()  # the data is kept if cancelled here
                        return data
                # Readability first: a reader that takes up to 64 KiB at a time leaves the
                # socket empty, so a recv tried first failed with EAGAIN almost every time.
                # The wait is a cancellation point before any byte is taken, and yields.
                while True:
                    await wait_readable(sock)
                    try:
                        data = sock.recv(size)
                    except BlockingIOError:
                        continue
                    self._axl_filled = len(data) == size
                    return data
            except trio.ClosedResourceError:
                return b""  # closed locally while waiting: end of stream (as py-libp2p)
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    return b""  # closed locally: end of stream (as py-libp2p)
                raise ConnectionClosedError(
                    f"TCP connection reset by remote peer: {exc}", transport="tcp"
                ) from exc

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

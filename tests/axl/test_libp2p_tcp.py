"""Read-ahead on py-libp2p's TCP streams (``axl/_libp2p_tcp.py``): small reads are served
from one big socket read, in order, with nothing lost; end of stream still shows."""

from __future__ import annotations

import os

import trio

from axl._libp2p_tcp import READ_AHEAD, read_ahead


class FakeStream:
    """A stream whose socket delivers ``chunks`` (then end of stream: b"")."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.socket_reads: list[int | None] = []


async def socket_read(self: FakeStream, n: int | None = None) -> bytes:
    await trio.lowlevel.checkpoint()
    if n == 0:
        return b""  # as py-libp2p's TrioTCPStream.read
    self.socket_reads.append(n)
    if not self.chunks:
        return b""
    chunk = self.chunks.pop(0)
    if n is not None and n > 0 and len(chunk) > n:
        self.chunks.insert(0, chunk[n:])
        chunk = chunk[:n]
    return chunk


async def test_small_reads_are_served_from_one_socket_read_in_order() -> None:
    read = read_ahead(socket_read)
    payload = os.urandom(5000)
    # Noise-like: a 2-byte length, then the body, many messages in one socket delivery.
    stream = FakeStream([payload])
    got = b""
    while len(got) < len(payload):
        got += await read(stream, 2)
        got += await read(stream, 98)
    assert got == payload
    assert stream.socket_reads == [READ_AHEAD]  # one system call for 100 reads
    assert await read(stream, 2) == b""  # end of stream shows once the buffer is empty


async def test_reads_across_socket_deliveries_and_large_reads_pass_through() -> None:
    read = read_ahead(socket_read)
    first, second = os.urandom(10), os.urandom(10)
    stream = FakeStream([first, second, b"x" * (READ_AHEAD + 10)])
    assert await read(stream, 4) == first[:4]
    assert await read(stream, 100) == first[4:]  # what is buffered, no socket read
    assert await read(stream, 0) == b""
    assert await read(stream, 3) == second[:3]
    assert await read(stream, None) == second[3:]
    assert await read(stream, READ_AHEAD) == b"x" * READ_AHEAD  # passes straight through
    assert stream.socket_reads == [READ_AHEAD, READ_AHEAD, READ_AHEAD]

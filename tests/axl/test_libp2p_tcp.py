"""Read-ahead and direct socket reads on py-libp2p's TCP streams (``axl/_libp2p_tcp.py``):
small reads are served from one big socket read, in order, with nothing lost; end of stream
still shows; direct reads keep trio's cancellation and py-libp2p's end-of-stream and reset
outcomes."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

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


# -- direct socket reads (``direct_read``) on a real socket pair ------------------------------


async def _pair() -> tuple[object, trio.SocketStream]:
    """A py-libp2p ``TrioTCPStream`` with our reads installed, and the other end."""
    from libp2p.io.trio import TrioTCPStream

    from axl._libp2p_tcp import install_fast_locks, install_read_ahead

    install_read_ahead()
    install_fast_locks()
    left, right = trio.socket.socketpair()
    return TrioTCPStream(trio.SocketStream(left)), trio.SocketStream(right)


async def test_direct_read_takes_what_the_socket_holds_and_waits_for_more() -> None:
    ours, other = await _pair()
    await other.send_all(b"abc")
    assert await ours.read(READ_AHEAD) == b"abc"  # type: ignore[attr-defined]
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await ours.read(READ_AHEAD))  # type: ignore[attr-defined]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # waiting on the empty socket
        await other.send_all(b"later")
    assert got == [b"later"]
    await other.aclose()
    assert await ours.read(READ_AHEAD) == b""  # type: ignore[attr-defined]  # peer's EOF


async def test_direct_read_cancelled_while_waiting_loses_nothing() -> None:
    ours, other = await _pair()
    with trio.move_on_after(0.05) as scope:
        await ours.read(READ_AHEAD)  # type: ignore[attr-defined]
    assert scope.cancelled_caught
    await other.send_all(b"kept")
    with trio.CancelScope() as cancelled:
        cancelled.cancel()
        with pytest.raises(trio.Cancelled):
            await ours.read(READ_AHEAD)  # type: ignore[attr-defined]
    assert await ours.read(READ_AHEAD) == b"kept"  # type: ignore[attr-defined]


async def test_direct_read_local_close_is_end_of_stream_and_reset_raises() -> None:
    from libp2p.io.exceptions import ConnectionClosedError

    ours, other = await _pair()
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await ours.read(READ_AHEAD))  # type: ignore[attr-defined]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        await ours.close()  # type: ignore[attr-defined]  # closed locally while a read waits
    assert got == [b""]
    assert await ours.read(READ_AHEAD) == b""  # type: ignore[attr-defined]  # and after

    ours, other = await _pair()
    await ours.write(b"unread")  # type: ignore[attr-defined]
    await other.aclose()  # closed with unread data: a reset (ECONNRESET) on our side
    with pytest.raises(ConnectionClosedError):
        await ours.read(READ_AHEAD)  # type: ignore[attr-defined]


async def test_direct_read_after_a_full_buffer_tries_the_socket_first_in_order() -> None:
    ours, other = await _pair()
    data = os.urandom(READ_AHEAD + 10)
    await other.send_all(data)
    assert await ours.read(READ_AHEAD) == data[:READ_AHEAD]  # type: ignore[attr-defined]
    assert ours._axl_filled  # type: ignore[attr-defined]  # the recv filled its buffer
    with trio.CancelScope() as cancelled:
        cancelled.cancel()
        with pytest.raises(trio.Cancelled):
            await ours.read(READ_AHEAD)  # type: ignore[attr-defined]  # before taking a byte
    assert await ours.read(READ_AHEAD) == data[READ_AHEAD:]  # type: ignore[attr-defined]
    assert not ours._axl_filled  # type: ignore[attr-defined]  # drained: wait first again
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await ours.read(READ_AHEAD))  # type: ignore[attr-defined]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        await other.send_all(b"more")
    assert got == [b"more"]

"""Yamux fast paths (``axl/_libp2p_yamux.py``): a write the send window covers becomes the
same DATA frame py-libp2p builds and debits the window; anything else (a split, an exhausted
window, another writer or window update in progress) takes py-libp2p's path; a DATA body the
session holds is taken without a read timeout, otherwise py-libp2p reads it. A write waiting
on a zero send window goes on when the window is credited (not at the next 10 ms poll), finds
credit nobody announced at the poll, and fails as py-libp2p's does on a closed stream or after
5 s without credit (the clock is trio's mock one: a poll or a timeout happens only when a test
moves it)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
import trio

from axl._libp2p_locks import FastLock
from axl._libp2p_yamux import _buffered_body, _credited_write, _window_write, window_grew

HEADER = struct.Struct("!BBHII")  # py-libp2p's YAMUX_HEADER_FORMAT
LARGEST = 64 * 1024 - 12


class Conn:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def _write_frame(self, data: bytes) -> None:
        self.frames.append(data)


class Stream:
    def __init__(self, window: int = 256 * 1024) -> None:
        from libp2p.stream_muxer.rw_lock import ReadWriteLock

        self.conn = Conn()
        self.stream_id = 7
        self.send_window = window
        self.send_closed = self.closed = False
        self.window_lock = FastLock()
        self.rw_lock = ReadWriteLock()


def writer() -> tuple[Any, list[tuple[Any, bytes]]]:
    slow: list[tuple[Any, bytes]] = []

    async def original(self: Any, data: bytes) -> None:
        slow.append((self, data))

    return _window_write(original, HEADER, 0, LARGEST), slow


async def test_a_write_within_the_window_is_py_libp2ps_data_frame() -> None:
    write, slow = writer()
    stream = Stream()
    await write(stream, b"hello")
    await write(stream, b"x" * LARGEST)
    assert stream.conn.frames == [
        HEADER.pack(0, 0, 0, 7, 5) + b"hello",
        HEADER.pack(0, 0, 0, 7, LARGEST) + b"x" * LARGEST,
    ]
    assert stream.send_window == 256 * 1024 - 5 - LARGEST
    assert slow == []


@pytest.mark.parametrize(
    "case", ["split", "window", "empty", "closed", "window_lock", "writer", "send_closed"]
)
async def test_everything_else_takes_py_libp2ps_path(case: str) -> None:
    write, slow = writer()
    stream = Stream(window=10 if case == "window" else 256 * 1024)
    data = b"y" * (LARGEST + 1 if case == "split" else 0 if case == "empty" else 20)
    if case == "closed":
        stream.closed = True
    if case == "send_closed":
        stream.send_closed = True
    if case == "window_lock":
        await stream.window_lock.acquire()
    if case == "writer":
        await stream.rw_lock.acquire_write()
    await write(stream, data)
    assert slow == [(stream, data)]
    assert stream.conn.frames == []


async def test_a_buffered_body_is_taken_without_a_read() -> None:
    reads: list[int] = []

    async def original(self: Any, length: int) -> bytes:
        await trio.lowlevel.checkpoint()
        reads.append(length)
        return b"r" * length

    class Session:
        def __init__(self, held: bytes) -> None:
            self.held = held

        def take_buffered(self, n: int) -> bytes | None:
            if len(self.held) < n:
                return None
            data, self.held = self.held[:n], self.held[n:]
            return data

    class Muxer:
        def __init__(self, secured: Any) -> None:
            self.secured_conn = secured

    body = _buffered_body(original)
    session = Session(b"abcdef")
    assert await body(Muxer(session), 4) == b"abcd"
    assert await body(Muxer(session), 4) == b"rrrr"  # only 2 held: py-libp2p's read
    assert await body(Muxer(object()), 3) == b"rrr"  # a stock session: py-libp2p's read
    assert reads == [4, 3]


def credited_write() -> Any:
    from libp2p.stream_muxer.exceptions import MuxedStreamError

    return _credited_write(HEADER, 0, LARGEST, MuxedStreamError)


async def test_a_writer_on_a_zero_window_goes_on_when_the_window_is_credited(
    mock_clock: trio.testing.MockClock,
) -> None:
    write = credited_write()
    stream = Stream(window=0)
    written: list[bool] = []

    async def writing() -> None:
        await write(stream, b"abcdefghij")
        written.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writing)
        await trio.testing.wait_all_tasks_blocked()
        assert stream.conn.frames == []
        stream.send_window += 4
        window_grew(stream)
        await trio.testing.wait_all_tasks_blocked()
        assert stream.conn.frames == [HEADER.pack(0, 0, 0, 7, 4) + b"abcd"]  # the clock stood
        assert not written
        stream.send_window += 100
        window_grew(stream)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()  # a writer that missed the wake-up would wait forever
    assert written
    assert stream.conn.frames[1:] == [HEADER.pack(0, 0, 0, 7, 6) + b"efghij"]
    assert stream.send_window == 94


async def test_credit_nobody_announced_is_found_at_the_poll(
    mock_clock: trio.testing.MockClock,
) -> None:
    write = credited_write()
    stream = Stream(window=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(write, stream, b"abc")
        await trio.testing.wait_all_tasks_blocked()
        stream.send_window += 3  # as py-libp2p's own reader credits it: no wake-up
        await trio.testing.wait_all_tasks_blocked()
        assert stream.conn.frames == []
        mock_clock.jump(0.01)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert stream.conn.frames == [HEADER.pack(0, 0, 0, 7, 3) + b"abc"]


@pytest.mark.parametrize("case", ["no credit", "closed"])
async def test_a_write_on_a_zero_window_fails_as_py_libp2ps(
    mock_clock: trio.testing.MockClock, case: str
) -> None:
    from libp2p.stream_muxer.exceptions import MuxedStreamError

    write = credited_write()
    stream = Stream(window=0)
    failed: list[str] = []

    async def writing() -> None:
        try:
            await write(stream, b"abc")
        except MuxedStreamError as exc:
            failed.append(str(exc))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writing)
        await trio.testing.wait_all_tasks_blocked()
        if case == "closed":
            stream.closed = True  # nobody is woken for it: the poll sees it
            mock_clock.jump(0.01)
        else:
            mock_clock.jump(4.99)
            await trio.testing.wait_all_tasks_blocked()
            assert failed == []
            mock_clock.jump(0.02)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert failed == (
        ["Stream is closed"]
        if case == "closed"
        else ["Timed out waiting for window update after 5 seconds."]
    )
    assert stream.conn.frames == []

"""The lean yamux session (``axl/_libp2p_yamux_session.py``): it talks to py-libp2p's stock
``Yamux`` both ways over real Noise sessions on a socket pair (streams, windows past the
initial one, FIN, RST, pings), and hostile frames end in counted outcomes: a malformed
header, a DATA frame over the stream's window or an oversized one end the session with a
GoAway; DATA for an unknown stream is dropped and counted while the session carries on."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from axl._libp2p_yamux import install_batched_window_updates
from axl._libp2p_yamux_session import lean_yamux_class
from axl._stats import Counters

from .clusters import eventually
from .test_libp2p_noise import close_socket_pairs, handshake  # noqa: F401 (the fixture)

HEADER = struct.Struct("!BBHII")
DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8
WINDOW = 256 * 1024


def muxer(session: Any, lean: bool, stats: Counters) -> Any:
    from libp2p.stream_muxer.yamux.yamux import Yamux

    install_batched_window_updates()  # as the transport runs it, for both kinds
    peer = session.remote_peer
    if lean:
        return lean_yamux_class()(session, peer, is_initiator=session.is_initiator, stats=stats)
    return Yamux(session, peer, is_initiator=session.is_initiator)


@asynccontextmanager
async def pair(lean_dialer: bool, lean_listener: bool) -> AsyncIterator[tuple[Any, Any, Counters]]:
    """Two started muxers over Noise on a socket pair; the listener's counters."""
    dialer_session, listener_session = await handshake(True, True)
    stats = Counters()
    dialer = muxer(dialer_session, lean_dialer, Counters())
    listener = muxer(listener_session, lean_listener, stats)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dialer.start)
        nursery.start_soon(listener.start)
        await eventually(lambda: dialer.is_established and listener.is_established)
        yield dialer, listener, stats
        nursery.cancel_scope.cancel()


async def read_exactly(stream: Any, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        got += await stream.read(n - len(got))
    return bytes(got)


@pytest.mark.parametrize(
    ("lean_dialer", "lean_listener"), [(True, False), (False, True), (True, True)]
)
async def test_lean_and_stock_muxers_talk_both_ways(lean_dialer: bool, lean_listener: bool) -> None:
    from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamReset

    lean = lean_yamux_class()
    async with pair(lean_dialer, lean_listener) as (dialer, listener, stats):
        assert isinstance(dialer, lean) == lean_dialer
        assert isinstance(listener, lean) == lean_listener
        for opener, accepter in ((dialer, listener), (listener, dialer)):
            big = os.urandom(4 * WINDOW + 17)  # needs window updates to get through
            small = [os.urandom(n) for n in (1, 12, 300, 5000)]
            out = await opener.open_stream()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(out.write, big)
                into = await accepter.accept_stream()
                assert await read_exactly(into, len(big)) == big
            for part in small:
                await out.write(part)
                await into.write(part[::-1])
            assert await read_exactly(into, sum(map(len, small))) == b"".join(small)
            assert await read_exactly(out, sum(map(len, small))) == b"".join(p[::-1] for p in small)
            await out.close()  # FIN: the other side reads to the end, then EOF
            with pytest.raises(MuxedStreamEOF):
                await into.read(10)
            second = await opener.open_stream()
            await second.write(b"doomed")
            doomed = await accepter.accept_stream()
            assert await read_exactly(doomed, 6) == b"doomed"
            await second.reset()
            await eventually(lambda stream=doomed: stream.reset_received)  # type: ignore[misc]
            with pytest.raises((MuxedStreamReset, MuxedStreamEOF)):  # EOF once reclaimed
                await doomed.read(1)
        await eventually(lambda: dialer.rtt() > 0 and listener.rtt() > 0)  # pings answered
        assert stats.total("yamux.") == 0


@asynccontextmanager
async def raw_peer() -> AsyncIterator[tuple[Any, Any, Counters]]:
    """A lean listener muxer and the raw Noise session of its peer (writing any frame)."""
    session, listener_session = await handshake(True, True)
    stats = Counters()
    listener = muxer(listener_session, True, stats)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.start)
        await eventually(lambda: listener.is_established)
        yield session, listener, stats
        nursery.cancel_scope.cancel()


async def frames_until_go_away(session: Any) -> int:
    """Read frames from the peer until its GoAway; return the GoAway's error code."""
    while True:
        _, typ, _, _, length = HEADER.unpack(await session.read(12))
        if typ == GO_AWAY:
            code: int = length
            return code
        if typ == DATA and length:
            await session.read(length)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([HEADER.pack(1, DATA, 0, 1, 0)], "malformed"),  # version 1
        ([HEADER.pack(0, 9, 0, 1, 0)], "malformed"),  # no such type
        ([HEADER.pack(0, DATA, 0, 99, 1 << 31)], "oversized"),  # unknown stream, huge body
        ([HEADER.pack(0, DATA, SYN, 1, WINDOW + 1)], "window_exceeded"),  # SYN over a window
        (  # two frames that together pass the stream's window
            [
                HEADER.pack(0, WINDOW_UPDATE, SYN, 1, 0),
                HEADER.pack(0, DATA, 0, 1, WINDOW - 10) + b"x" * (WINDOW - 10),
                HEADER.pack(0, DATA, 0, 1, 11) + b"y" * 11,
            ],
            "window_exceeded",
        ),
    ],
)
async def test_hostile_frames_end_the_session_with_a_counted_go_away(
    frames: list[bytes], reason: str
) -> None:
    async with raw_peer() as (session, listener, stats):
        for frame in frames:
            await session.write(frame)
        with trio.fail_after(10):
            assert await frames_until_go_away(session) == 1  # protocol error
            await listener.event_closed.wait()
        assert stats.snapshot() == {f"yamux.refused_{reason}": 1}
        # nothing was buffered past the window
        assert all(len(buffer) <= WINDOW for buffer in listener.stream_buffers.values())


async def test_data_for_an_unknown_stream_is_dropped_and_counted() -> None:
    async with raw_peer() as (session, listener, stats):
        await session.write(HEADER.pack(0, DATA, 0, 41, 5) + b"stale")
        await session.write(HEADER.pack(0, WINDOW_UPDATE, SYN, 1, 0))
        await session.write(HEADER.pack(0, DATA, FIN, 1, 5) + b"hello")
        stream = await listener.accept_stream()
        assert await read_exactly(stream, 5) == b"hello"
        assert stats.snapshot() == {"yamux.unknown_stream": 1}
        assert not listener.is_closed


async def test_a_duplicate_syn_is_reset_and_a_truncated_frame_closes_quietly() -> None:
    async with raw_peer() as (session, listener, stats):
        await session.write(HEADER.pack(0, WINDOW_UPDATE, SYN, 1, 0))
        await listener.accept_stream()
        await session.write(HEADER.pack(0, WINDOW_UPDATE, SYN, 1, 0))
        replies = [HEADER.unpack(await session.read(12)) for _ in range(2)]
        assert replies == [(0, WINDOW_UPDATE, ACK, 1, 0), (0, WINDOW_UPDATE, RST, 1, 0)]
        await session.write(HEADER.pack(0, DATA, 0, 1, 100) + b"z" * 10)  # 90 bytes short
        await session.close()
        with trio.fail_after(10):
            await listener.event_closed.wait()
        assert stats.snapshot() == {}


async def test_a_message_failing_authentication_closes_the_session_counted() -> None:
    async with raw_peer() as (session, listener, stats):
        await session.raw.write(b"\x00\x20" + b"x" * 32)  # a Noise message no key sealed
        with trio.fail_after(10):
            await listener.event_closed.wait()
        assert stats.snapshot() == {"yamux.failed": 1}


@pytest.mark.parametrize("lean_listener", [False, True])
async def test_a_window_update_wakes_the_lean_sessions_writer_at_once(
    monkeypatch: pytest.MonkeyPatch, lean_listener: bool
) -> None:
    """With the zero-window poll made an hour long, a write four windows long gets through
    only if the lean session's reader wakes the writer on each WINDOW_UPDATE (without it the
    write fails after 5 s)."""
    import axl._libp2p_yamux

    monkeypatch.setattr(axl._libp2p_yamux, "WINDOW_POLL", 3600.0)
    async with pair(True, lean_listener) as (dialer, listener, _):
        big = os.urandom(4 * WINDOW + 17)
        out = await dialer.open_stream()
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(out.write, big)
                into = await listener.accept_stream()
                await eventually(lambda: out.send_window == 0)  # a whole window ahead: waiting
                assert await read_exactly(into, len(big)) == big

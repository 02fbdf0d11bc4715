"""``Libp2pBulkStream.send_all``: writes cut to fit one Noise message each, and the wait for a
window update instead of py-libp2p's 10 ms poll (a fake py-libp2p stream)."""

from __future__ import annotations

import pytest
import trio

from axl import PeerUnreachable
from axl._libp2p_bulk import WINDOW_ROUNDS, WRITE_PIECE, Libp2pBulkStream
from axl._libp2p_noise import MAX_PLAINTEXT


class FakeMuxed:
    def __init__(self, send_window: int) -> None:
        self.send_window = send_window
        self.closed = False


class FakeStream:
    """Records each write and the send window it found."""

    def __init__(self, send_window: int = 1 << 30, fail: bool = False) -> None:
        self.muxed_stream = FakeMuxed(send_window)
        self.writes: list[tuple[bytes, int]] = []
        self.fail = fail

    async def write(self, data: bytes | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.fail:
            raise RuntimeError("stream reset")
        self.writes.append((bytes(data), self.muxed_stream.send_window))
        self.muxed_stream.send_window -= len(data)


def test_a_piece_and_its_yamux_header_fit_one_noise_message() -> None:
    assert WRITE_PIECE + 12 == MAX_PLAINTEXT


@pytest.mark.parametrize("size", [0, 1, WRITE_PIECE, WRITE_PIECE + 1, 3 * WRITE_PIECE + 5])
async def test_large_writes_go_out_in_pieces_that_fit_a_noise_message(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    fake = FakeStream()
    await Libp2pBulkStream(fake).send_all(memoryview(data))  # type: ignore[arg-type]
    assert b"".join(w for w, _ in fake.writes) == data
    assert all(len(w) <= WRITE_PIECE for w, _ in fake.writes)
    assert len(fake.writes) == max(1, -(-size // WRITE_PIECE))


async def test_a_piece_waits_a_few_rounds_for_a_window_update() -> None:
    fake = FakeStream(send_window=WRITE_PIECE + 100)  # room for one piece, not two

    async def update_soon() -> None:
        for _ in range(3):  # the peer's update arrives a few scheduling rounds later
            await trio.lowlevel.checkpoint()
        fake.muxed_stream.send_window += 1 << 20

    async with trio.open_nursery() as nursery:
        nursery.start_soon(update_soon)
        await Libp2pBulkStream(fake).send_all(bytes(2 * WRITE_PIECE))  # type: ignore[arg-type]
    assert [window >= WRITE_PIECE for _, window in fake.writes] == [True, True]


async def test_without_an_update_the_write_goes_on_after_a_few_rounds() -> None:
    fake = FakeStream(send_window=10)
    with trio.fail_after(1.0):
        await Libp2pBulkStream(fake).send_all(bytes(WRITE_PIECE + 1))  # type: ignore[arg-type]
    assert [len(w) for w, _ in fake.writes] == [WRITE_PIECE, 1]
    assert WINDOW_ROUNDS >= 1


async def test_a_broken_stream_is_peer_unreachable() -> None:
    with pytest.raises(PeerUnreachable):
        await Libp2pBulkStream(FakeStream(fail=True)).send_all(bytes(WRITE_PIECE * 2))  # type: ignore[arg-type]

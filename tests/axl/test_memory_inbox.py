"""The memory network's delayed inbox: a frame is received at its due time, in due order,
whether the receiver was waiting for nothing, for a later frame, or not at all (a push moves
a waiting receiver's deadline instead of waking it)."""

from __future__ import annotations

import trio
import trio.testing

from axl import Identity, InboundFrame
from axl._memory_inbox import _DelayedInbox

PEER = Identity.from_seed(b"\x91" * 32).peer_id


def frame(name: bytes) -> InboundFrame:
    return InboundFrame(name, PEER, None, False)


async def test_each_frame_arrives_at_its_due_time_in_due_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inbox = _DelayedInbox(16)
    got: list[tuple[float, bytes]] = []

    async def receive() -> None:
        for _ in range(4):
            item = await inbox.get()
            got.append((trio.current_time(), item.frame))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.sleep(1)  # the receiver waits on an empty inbox
        inbox.put_nowait(frame(b"late"), 10)  # due at 11
        await trio.sleep(1)  # now waiting for "late"
        inbox.put_nowait(frame(b"early"), 2)  # due at 4: moves the wait up
        inbox.put_nowait(frame(b"middle"), 5)  # due at 7
        await trio.sleep(1)
        inbox.put_nowait(frame(b"now"), 0)  # undelayed: wakes the receiver at once
    assert [(round(t - start, 6), name) for t, name in got] == [
        (3.0, b"now"),
        (4.0, b"early"),
        (7.0, b"middle"),
        (11.0, b"late"),
    ]


async def test_close_wakes_a_waiting_receiver(autojump_clock: trio.testing.MockClock) -> None:
    inbox = _DelayedInbox(4)
    inbox.put_nowait(frame(b"far"), 1000)
    closed: list[bool] = []

    async def receive() -> None:
        try:
            await inbox.get()
        except Exception as exc:  # TransportClosed
            closed.append(type(exc).__name__ == "TransportClosed")

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.sleep(1)
        inbox.close()
    assert closed == [True]
    assert trio.current_time() - start < 2

"""The bus's batches: on receipt one bad frame in a batch is rejected alone (typed and
counted), the rest of the batch is delivered in order, with signatures verified on the event
loop, on one worker thread, or split over two; on sending, ``send_many`` signs a batch (on a
worker thread when large enough), keeps the order, and sends nothing of a batch that fails
its checks."""

from __future__ import annotations

import os

import pytest
import trio

from axl import (
    Bus,
    BusConfig,
    Context,
    FrameTooLarge,
    Identity,
    InboundFrame,
    MemoryNetwork,
    Message,
    MessageTypeError,
    PeerId,
    TransportClosed,
    open_bus,
)
from axl._wire import Kind, encode_frame

ALICE, BOB = Identity.from_seed(b"\x31" * 32), Identity.from_seed(b"\x32" * 32)


class Item(Message, tag="test.batch_item"):
    n: int


class Untagged(Message):
    pass


class OneBatchTransport:
    """Hands the bus exactly one prepared batch, then nothing more (until closed)."""

    def __init__(self, peer: PeerId, batch: list[InboundFrame]) -> None:
        self._peer = peer
        self._batch: list[InboundFrame] | None = batch
        self.sizes: list[int] = []
        self._closed = trio.Event()

    @property
    def local_peer(self) -> PeerId:
        return self._peer

    async def send(self, peer: PeerId, frame: bytes) -> None:
        await trio.lowlevel.checkpoint()

    async def publish(self, topic: str, frame: bytes) -> None:
        await trio.lowlevel.checkpoint()

    async def subscribe(self, topic: str) -> None:
        await trio.lowlevel.checkpoint()

    async def unsubscribe(self, topic: str) -> None:
        await trio.lowlevel.checkpoint()

    async def receive(self) -> InboundFrame:
        return (await self.receive_batch(1))[0]

    async def receive_batch(self, max_frames: int) -> list[InboundFrame]:
        if self._batch is not None:
            batch, self._batch = self._batch, None
            self.sizes.append(len(batch))
            await trio.lowlevel.checkpoint()
            return batch
        await self._closed.wait()
        raise TransportClosed("closed")

    async def aclose(self) -> None:
        self._closed.set()
        await trio.lowlevel.checkpoint()


def frame(n: int, *, message_id: bytes | None = None) -> bytes:
    return encode_frame(
        ALICE,
        kind=Kind.MESSAGE,
        type=Item.axl_tag,
        version=1,
        recipient=BOB.peer_id,
        topic=None,
        message_id=message_id or os.urandom(16),
        reply_to=None,
        timestamp_ms=1000 * 1_000_000,
        nonce=n,
        payload=Item(n=n).encode_payload(),
    )


@pytest.mark.parametrize("threads", [0, 1, 2])
async def test_a_bad_signature_in_a_batch_is_rejected_alone(threads: int) -> None:
    frames = [frame(n) for n in range(12)]
    forged = bytearray(frames[5])
    forged[-1] ^= 1  # the last byte is the signature's
    frames[5] = bytes(forged)
    frames.append(frames[2])  # a replay inside the same batch
    batch = [InboundFrame(f, ALICE.peer_id, None) for f in frames]
    transport = OneBatchTransport(BOB.peer_id, batch)
    config = BusConfig(clock=lambda: 1_000_000.0, verify_threads=threads, thread_batch_min=1)
    bus = Bus(BOB, transport, config=config)
    got: list[int] = []

    async def on_item(message: Item, ctx: Context) -> None:
        got.append(message.n)

    bus.on(Item, on_item)
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        with trio.fail_after(10):
            while len(got) < 11:
                await trio.sleep(0.01)
        await bus.aclose()
        await transport.aclose()
    assert transport.sizes == [13]  # one batch
    assert got == [n for n in range(12) if n != 5]
    assert bus.stats["rejected.signature"] == 1
    assert bus.stats["rejected.replay"] == 1
    assert bus.stats["received"] == 11
    assert bus.stats["verify.thread_batches"] == (1 if threads else 0)


class Big(Message, tag="test.batch_big"):
    data: bytes


@pytest.mark.parametrize("threads", [0, 1])
async def test_send_many_signs_a_batch_and_keeps_the_order(threads: int) -> None:
    network = MemoryNetwork()
    config = BusConfig(verify_threads=threads, thread_batch_min=4)
    async with (
        network.connect(ALICE.peer_id) as ta,
        network.connect(BOB.peer_id) as tb,
        open_bus(ALICE, ta, config=config) as alice,
        open_bus(BOB, tb, config=config) as bob,
    ):
        got: list[int] = []

        async def on_item(message: Item, ctx: Context) -> None:
            got.append(message.n)

        bob.on(Item, on_item)
        await alice.send_many(BOB.peer_id, [Item(n=n) for n in range(20)])
        await alice.send_many(BOB.peer_id, [Item(n=20)])  # under thread_batch_min: inline
        with trio.fail_after(10):
            while len(got) < 21:
                await trio.sleep(0.01)
        assert got == list(range(21))
        assert alice.stats["sign.thread_batches"] == (1 if threads else 0)
        assert alice.stats["sent"] == 21
        assert bob.stats.total("rejected.") == 0

        # One message over the cap: nothing of the batch is sent.
        too_big = Big(data=b"x" * (config.max_frame_size + 1))
        with pytest.raises(FrameTooLarge):
            await alice.send_many(BOB.peer_id, [Item(n=21), too_big])
        with pytest.raises(MessageTypeError):
            await alice.send_many(BOB.peer_id, [Item(n=22), Untagged()])
        await trio.sleep(0.05)
        assert got == list(range(21))
        assert alice.stats["sent"] == 21

"""The scenario's network over a real transport (``--processes`` workers): inbound frames are
lost or delayed as a memory network link would, or cut by a timed partition between the
envelope's sender and the receiver; a perfect link is the transport itself."""

from __future__ import annotations

import random

import pytest
import trio

from agents.sim._process_links import LinkStats, Partitions, shaped
from axl import Identity, InboundFrame, LinkProfile, MemoryNetwork, TransportClosed
from axl._wire import Kind, encode_frame


async def test_loss_and_delay_apply_to_inbound_frames(autojump_clock: trio.abc.Clock) -> None:
    network = MemoryNetwork()
    a, b = Identity.generate().peer_id, Identity.generate().peer_id
    stats = LinkStats()
    profile = LinkProfile(latency=2.0, jitter=1.0, loss=0.5)
    async with network.connect(a) as sender, network.connect(b) as inner:
        async with shaped(inner, profile, random.Random(1), stats) as receiver:
            assert receiver is not inner
            start = trio.current_time()
            for i in range(400):
                await sender.send(b, i.to_bytes(2, "big"))
            got = []
            with trio.move_on_after(10):
                while True:
                    got.append(await receiver.receive())
                    assert 2.0 <= trio.current_time() - start <= 3.0
            assert stats.lost + stats.delivered == 400
            assert len(got) == stats.delivered
            assert 120 < stats.lost < 280  # about half
            await receiver.aclose()
            with pytest.raises(TransportClosed):
                await receiver.receive()


async def test_a_perfect_link_is_the_transport_itself() -> None:
    network = MemoryNetwork()
    async with network.connect(Identity.generate().peer_id) as inner:
        async with shaped(inner, LinkProfile(), random.Random(1), LinkStats()) as same:
            assert same is inner


def _gossip(origin: Identity) -> bytes:
    return encode_frame(
        origin, kind=Kind.MESSAGE, type="market.offer", version=1, recipient=None,
        topic="market.jobs", message_id=bytes(16), reply_to=None, timestamp_ms=0, nonce=0,
        payload=b"",
    )  # fmt: skip


async def test_a_timed_partition_cuts_by_the_envelopes_sender(
    autojump_clock: trio.abc.Clock,
) -> None:
    identities = [Identity.generate() for _ in range(6)]
    peers = [i.peer_id for i in identities]
    partitions = Partitions([(10.0, 5.0, 0.5)], peers, seed=1)
    island = partitions.windows[0][2]
    inside = [i for i in identities if i.peer_id.raw in island]
    outside = [i for i in identities if i.peer_id.raw not in island]
    assert len(inside) == 3
    cut = partitions.cut_for(inside[0].peer_id)
    # forwarded by a neighbour on the receiver's side: the envelope's sender decides
    across = InboundFrame(_gossip(outside[0]), via=inside[1].peer_id, topic="market.jobs")
    same = InboundFrame(_gossip(inside[1]), via=outside[0].peer_id, topic="market.jobs")
    garbage = InboundFrame(b"\x01junk", via=outside[1].peer_id, topic=None)
    assert not cut(across)  # not started: no partition yet
    partitions.start()
    await trio.sleep(11)
    assert [cut(across), cut(same), cut(garbage)] == [True, False, True]
    await trio.sleep(5)
    assert not cut(across)  # healed

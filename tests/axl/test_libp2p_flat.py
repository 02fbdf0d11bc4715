"""Gossip RPCs written in one step (``axl/_libp2p_flat.py``): the flat way is taken when every
layer is free, py-libp2p's way otherwise (nothing sealed, no window charged), a full socket
buffer is finished with the locks held (order and Noise nonces kept), and a cancelled writer
seals nothing. Interop with a stock py-libp2p GossipSub peer, which reads the flat frames, is
in ``test_libp2p_pubsub_inline.py``."""

from __future__ import annotations

import socket
from typing import Any

import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_flat import FlatWriter, flat_writer
from axl._stats import Counters

from .clusters import eventually
from .test_libp2p_pubsub_inline import receive_n

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0xD0 + n]) * 32)


async def meshed(publisher: Libp2pTransport, subscriber: Libp2pTransport) -> None:
    await subscriber.connect(publisher.listen_addrs[0])
    for node in (publisher, subscriber):
        await node.subscribe("t")
    mesh = publisher._pubsub.router.mesh  # type: ignore[union-attr]
    await eventually(lambda: len(mesh.get("t", ())) == 1)


def writer_to(publisher: Libp2pTransport, subscriber: Libp2pTransport) -> FlatWriter:
    from libp2p.peer.id import ID

    pubsub: Any = publisher._pubsub
    stream = pubsub.peers[ID(subscriber.local_peer.raw)]
    flat = flat_writer(stream, Counters())
    assert flat is not None, "our gossip streams run over the layers the flat writer knows"
    return flat


async def test_gossip_rpcs_go_out_flat_and_arrive_in_order() -> None:
    async with (
        Libp2pTransport.open(identity(1), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(2), config=CONFIG) as subscriber,
    ):
        await meshed(publisher, subscriber)
        got = []
        for burst in range(4):  # bursts within the per-peer queue (32 RPCs)
            for n in range(25):
                await publisher.publish("t", b"m%d" % (25 * burst + n))
            got += await receive_n(subscriber, 25)
        assert [frame.frame for frame in got] == [b"m%d" % n for n in range(100)]
        assert publisher.stats["gossip.rpcs_flat"] >= 1
        assert publisher.stats["gossip.rpcs_flat"] <= publisher.stats["gossip.rpcs_sent"]


async def test_a_busy_layer_or_a_short_window_leaves_the_write_to_py_libp2p() -> None:
    """``write`` returns False before charging the window or sealing when the session's frame
    lock is held, when the data is over the send window, or empty; then it writes."""
    async with (
        Libp2pTransport.open(identity(3), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(4), config=CONFIG) as subscriber,
    ):
        await meshed(publisher, subscriber)
        flat = writer_to(publisher, subscriber)
        muxed: Any = flat._muxed
        cipher: Any = flat._conn.secured_conn.send
        window, nonce = muxed.send_window, cipher.nonce
        frame_lock = flat._conn._write_lock
        holding, release = trio.Event(), trio.Event()

        async def hold() -> None:
            async with frame_lock:
                holding.set()
                await release.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold)
            await holding.wait()
            assert not await flat.write(b"\x01x")
            release.set()
        assert not await flat.write(b"")
        assert not await flat.write(b"x" * (muxed.send_window + 1))
        assert (muxed.send_window, cipher.nonce) == (window, nonce)
        assert await flat.write(b"\x01x")  # a one-byte RPC: a message the reader ignores
        assert (muxed.send_window, cipher.nonce) == (window - 2, nonce + 1)


async def test_a_cancelled_writer_seals_nothing() -> None:
    async with (
        Libp2pTransport.open(identity(5), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(6), config=CONFIG) as subscriber,
    ):
        await meshed(publisher, subscriber)
        flat = writer_to(publisher, subscriber)
        cipher: Any = flat._conn.secured_conn.send
        nonce, window = cipher.nonce, flat._muxed.send_window
        with trio.CancelScope() as scope:
            scope.cancel()
            await flat.write(b"\x01x")
        assert scope.cancelled_caught
        assert (cipher.nonce, flat._muxed.send_window) == (nonce, window)
        assert not flat._conn._write_lock.locked()


async def test_a_full_socket_buffer_is_finished_in_order_with_the_locks_held() -> None:
    """A small socket send buffer and RPCs near the frame limit: sends come back partial, the
    rest goes out with the locks held; every message arrives whole and in order (no other
    frame came between, the Noise nonces stayed in step)."""
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.utils import encode_uvarint

    async with (
        Libp2pTransport.open(identity(7), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(8), config=CONFIG) as subscriber,
    ):
        await meshed(publisher, subscriber)
        stats = Counters()
        flat = writer_to(publisher, subscriber)
        flat._stats = stats
        flat._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        payloads = [bytes([n]) * (60_000 - 97 * n) for n in range(24)]
        for n, payload in enumerate(payloads):
            message = rpc_pb2.Message(
                from_id=publisher.local_peer.raw,
                seqno=n.to_bytes(8, "big"),
                data=payload,
                topicIDs=["t"],
            )
            body = rpc_pb2.RPC(publish=[message]).SerializeToString()
            with trio.fail_after(10):
                while not await flat.write(encode_uvarint(len(body)) + body):
                    await trio.sleep(0.005)  # the send window is spent: wait for credit
        got = await receive_n(subscriber, len(payloads))
        assert [frame.frame for frame in got] == payloads
        assert stats["gossip.flat_partial"] >= 1

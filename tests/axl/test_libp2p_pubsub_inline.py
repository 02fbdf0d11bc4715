"""Gossip RPCs handled in the yamux session's reader (``axl/_libp2p_inline.py``,
``LeanYamux.attach_sink``): no task switch per RPC when its handling cannot block, and what
happens when it would.

The stream's task takes every RPC whose handling awaits (control, a topic validator) and all
that follow it, in order; frames arriving meanwhile stay in the yamux buffer (bounded by the
window). A validator that blocks stalls only its own stream, never the connection; an RPC
over the cap or malformed is still refused, counted and its stream reset (the sink hands the
reason to the task). Stock py-libp2p peers (stock yamux, stock GossipSub) interoperate both
ways.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_inline import InlineRpcs
from axl._libp2p_rpc import RpcDecoder
from axl._stats import Counters
from axl._transport import InboundFrame

from .clusters import eventually
from .test_libp2p_pubsub import prefixed
from .test_libp2p_yamux_session import DATA, HEADER, SYN, WINDOW_UPDATE, raw_peer

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0xC0 + n]) * 32)


# -- the sink, sans IO --------------------------------------------------------------------------


class FakeConn:
    def __init__(self) -> None:
        self.sinks: dict[int, Any] = {}
        self.woken = 0

    def attach_sink(self, stream_id: int, sink: Any) -> None:
        self.sinks[stream_id] = sink

    def detach_sink(self, stream_id: int) -> None:
        self.sinks.pop(stream_id, None)

    def wake_stream(self, stream_id: int) -> None:
        self.woken += 1


class FakePubsub:
    """Handles RPCs without control at once; those with control need the task."""

    def __init__(self) -> None:
        self.stats = Counters()
        self.handled: list[bytes] = []

    def _handle_rpc_now(self, rpc: Any, peer_id: Any) -> bool:
        if rpc.publish and rpc.publish[0].data == b"boom":
            raise RuntimeError("a bug in handling")
        if rpc.HasField("control"):
            return False
        self.handled.append(rpc.publish[0].data)
        return True


class FakeStream:
    stream_id = 7


def rpc_bytes(data: bytes, control: bool = False) -> bytes:
    from libp2p.pubsub.pb import rpc_pb2

    rpc = rpc_pb2.RPC(publish=[rpc_pb2.Message(data=data, topicIDs=["t"])])
    if control:
        rpc.control.graft.add(topicID="t")
    return prefixed(rpc.SerializeToString())


def test_the_task_takes_the_first_rpc_that_awaits_and_everything_after_it_in_order() -> None:
    pubsub, conn = FakePubsub(), FakeConn()
    inline = InlineRpcs(pubsub, conn, FakeStream(), "peer", RpcDecoder(1 << 16))
    assert inline.attached and conn.sinks[7] == inline.sink
    assert not inline.sink(rpc_bytes(b"early"))  # the task has not parked yet: buffered
    inline.busy = False  # the task parked
    chunk = rpc_bytes(b"a") + rpc_bytes(b"b", control=True) + rpc_bytes(b"c")
    assert inline.sink(chunk[:5]) and inline.sink(chunk[5:])  # split anywhere
    assert pubsub.handled == [b"a"]
    assert [rpc.publish[0].data for rpc in inline.pending] == [b"b", b"c"]
    assert inline.busy and conn.woken == 1
    assert not inline.sink(rpc_bytes(b"d"))  # the task is busy: yamux buffers it, in order
    inline.detach()
    assert not conn.sinks


def test_hostile_rpcs_in_the_sink_are_refusals_for_the_task_and_bugs_are_counted() -> None:
    for chunk, reason in [
        (b"\xff" * 11, "malformed_rpc"),  # a varint longer than 10 bytes
        (prefixed(b"\xff\xff\xff\xff junk"), "malformed_rpc"),
        (prefixed(b"x" * 2000), "oversized_rpc"),
    ]:
        conn = FakeConn()
        inline = InlineRpcs(FakePubsub(), conn, FakeStream(), "peer", RpcDecoder(1000))
        inline.busy = False
        assert inline.sink(chunk)  # consumed (dropped): the stream is about to be reset
        assert inline.refused == reason and inline.busy and conn.woken == 1
    pubsub = FakePubsub()
    inline = InlineRpcs(pubsub, FakeConn(), FakeStream(), "peer", RpcDecoder(1000))
    inline.busy = False
    assert inline.sink(rpc_bytes(b"boom") + rpc_bytes(b"fine"))  # never raises into yamux
    assert pubsub.stats["gossip.refused_rpc_failed"] == 1
    assert pubsub.handled == [b"fine"]


def test_a_muxer_without_sinks_keeps_the_task_reading() -> None:
    inline = InlineRpcs(FakePubsub(), object(), FakeStream(), "peer", RpcDecoder(1000))
    assert not inline.attached
    inline.detach()


# -- the yamux side -----------------------------------------------------------------------------


async def test_a_sink_consumes_data_without_buffering_and_owes_the_credit() -> None:
    """Consumed bytes leave the buffer empty and the window shrunk (credit owed, sent once
    half the window is due: the stream's reader is woken for it); a refused body, and any
    body while bytes are buffered, is buffered and wakes the reader as without a sink."""
    async with raw_peer() as (session, listener, _stats):
        await session.write(HEADER.pack(0, WINDOW_UPDATE, SYN, 1, 0))
        stream = await listener.accept_stream()
        await session.read(12)  # the ACK
        taken: list[bytes] = []
        accept = [True]

        def sink(data: bytes) -> bool:
            if accept[0]:
                taken.append(data)
            return accept[0]

        listener.attach_sink(1, sink)
        window = stream.recv_window
        await session.write(HEADER.pack(0, DATA, 0, 1, 5) + b"hello")
        await eventually(lambda: taken == [b"hello"])
        assert listener.stream_buffers[1] == b"" and stream.recv_window == window - 5
        assert not listener.stream_events[1].is_set() and listener.stream_idle(1)
        accept[0] = False
        await session.write(HEADER.pack(0, DATA, 0, 1, 3) + b"abc")
        await eventually(lambda: listener.stream_buffers[1] == b"abc")
        assert listener.stream_events[1].is_set() and not listener.stream_idle(1)
        accept[0] = True
        await session.write(HEADER.pack(0, DATA, 0, 1, 3) + b"def")  # behind buffered bytes
        await eventually(lambda: listener.stream_buffers[1] == b"abcdef")
        assert taken == [b"hello"]
        assert await stream.read() == b"abcdef"
        listener.stream_events[1] = trio.Event()
        big = window // 2
        await session.write(HEADER.pack(0, DATA, 0, 1, big) + b"z" * big)
        await eventually(lambda: listener.stream_events[1].is_set())  # credit due: woken
        await stream._auto_tune_and_send_window_update()
        update = HEADER.unpack(await session.read(12))
        assert update[1] == WINDOW_UPDATE and update[4] >= big
        listener.detach_sink(1)


# -- over real connections ----------------------------------------------------------------------


async def receive_n(transport: Libp2pTransport, n: int) -> list[InboundFrame]:
    got = []
    with trio.fail_after(15):
        for _ in range(n):
            got.append(await transport.receive())
    return got


async def test_gossip_messages_are_handled_in_the_session_reader() -> None:
    async with (
        Libp2pTransport.open(identity(1), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(2), config=CONFIG) as subscriber,
    ):
        await subscriber.connect(publisher.listen_addrs[0])
        for node in (publisher, subscriber):
            await node.subscribe("t")
        mesh = publisher._pubsub.router.mesh  # type: ignore[union-attr]
        await eventually(lambda: len(mesh.get("t", ())) == 1)
        for n in range(30):
            await publisher.publish("t", b"m%d" % n)
        got = await receive_n(subscriber, 30)
        assert [frame.frame for frame in got] == [b"m%d" % n for n in range(30)]
        assert subscriber.stats["gossip.inline_streams"] >= 1
        assert subscriber.stats["gossip.rpcs_inline"] >= 1


async def test_a_blocking_validator_stalls_its_stream_not_the_connection() -> None:
    """A validator that waits: its message and the ones after it on the same stream wait for
    it, in order; the connection's other streams (a direct frame) and the session's reader
    carry on."""
    release = trio.Event()

    async def slow_validator(peer: Any, msg: Any) -> bool:
        await release.wait()
        return True

    async with (
        Libp2pTransport.open(identity(3), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(4), config=CONFIG) as subscriber,
    ):
        await subscriber.connect(publisher.listen_addrs[0])
        pubsub: Any = subscriber._pubsub
        pubsub.set_topic_validator("slow", slow_validator, True)
        for topic in ("slow", "fast"):
            await subscriber.subscribe(topic)
            await publisher.subscribe(topic)
        mesh = publisher._pubsub.router.mesh  # type: ignore[union-attr]
        await eventually(lambda: all(len(mesh.get(t, ())) == 1 for t in ("slow", "fast")))
        await publisher.publish("slow", b"first")
        await eventually(lambda: subscriber.stats["gossip.rpcs_received"] >= 1)
        for n in range(5):
            await publisher.publish("fast", b"after %d" % n)
        await publisher.send(subscriber.local_peer, b"direct")
        (direct,) = await receive_n(subscriber, 1)  # the connection was not stalled
        assert direct.frame == b"direct" and direct.topic is None
        release.set()
        got = await receive_n(subscriber, 6)
        assert [frame.frame for frame in got] == [b"first"] + [b"after %d" % n for n in range(5)]


# -- interop with stock py-libp2p ---------------------------------------------------------------


@pytest.fixture
def stock_gossip_node() -> Any:
    """A stock py-libp2p host (stock yamux) with stock Pubsub and GossipSub."""
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    host = new_host(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
    router = GossipSub(
        [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")],
        degree=3,
        degree_low=2,
        degree_high=5,
        heartbeat_interval=0.2,  # type: ignore[arg-type]
    )
    return host, Pubsub(host, router)


async def test_a_stock_gossipsub_node_and_ours_exchange_messages_both_ways(
    stock_gossip_node: Any,
) -> None:
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.tools.anyio_service import background_trio_service

    host, pubsub = stock_gossip_node
    signed = Libp2pConfig(
        gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False, sign_gossip=True
    )
    async with (
        host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        background_trio_service(pubsub),
        Libp2pTransport.open(identity(5), config=signed) as ours,
    ):
        await pubsub.wait_until_ready()
        stock_sub = await pubsub.subscribe("t")
        await ours.subscribe("t")
        await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(ours.listen_addrs[0])))
        await eventually(lambda: len(pubsub.router.mesh.get("t", ())) == 1)
        await eventually(lambda: len(ours._pubsub.router.mesh.get("t", ())) == 1)  # type: ignore[union-attr]
        for n in range(10):
            await pubsub.publish("t", b"stock %d" % n)
        got = await receive_n(ours, 10)
        assert [frame.frame for frame in got] == [b"stock %d" % n for n in range(10)]
        assert ours.stats["gossip.rpcs_inline"] >= 1
        for n in range(10):
            await ours.publish("t", b"ours %d" % n)
        seen: list[bytes] = []
        with trio.fail_after(15):
            while len(seen) < 10:
                message = await stock_sub.get()
                if message.from_id == ours.local_peer.raw:  # not its own (stock delivers them)
                    seen.append(message.data)
        assert sorted(seen) == sorted(b"ours %d" % n for n in range(10))  # a task per message
        assert ours.stats["gossip.rpcs_flat"] >= 1  # stock yamux and Noise read flat writes


# -- implicit IDONTWANT -------------------------------------------------------------------------


async def test_a_peer_that_sent_us_a_message_gets_no_queued_copy_and_a_forger_cancels_none() -> (
    None
):
    """Our forward of a message to peer P is still queued when P's own copy arrives: P has it,
    the queued copy is dropped (counted). A forger's copy (same origin and seqno, other data)
    has another id and cancels nothing; nor does P's copy cancel the one queued for Q."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.rpc_queue import RpcQueue

    async with Libp2pTransport.open(identity(6), config=CONFIG) as node:
        await node.subscribe("t")
        pubsub: Any = node._pubsub
        router = pubsub.router
        p, q, r = (ID(identity(n).peer_id.raw) for n in (7, 8, 9))
        queues = {}
        for peer in (p, q, r):
            queues[peer] = pubsub.peer_queues[peer] = RpcQueue()  # no writer: stays queued
            pubsub.peers[peer] = object()
            pubsub.peer_topics.setdefault("t", set()).add(peer)
            router.peer_protocol[peer] = TProtocol("/meshsub/1.1.0")
        router.mesh["t"] = {p, q, r}
        victim = identity(10).peer_id.raw

        def message(data: bytes) -> Any:
            return rpc_pb2.Message(data=data, topicIDs=["t"], from_id=victim, seqno=b"\x00" * 8)

        def queued(peer: Any) -> list[bytes]:
            out: list[bytes] = []
            while len(queues[peer]):
                out += [m.data for m in queues[peer]._queue.pop().publish]  # type: ignore[union-attr]
            return out

        try:
            assert pubsub._handle_rpc_now(rpc_pb2.RPC(publish=[message(b"real")]), r)
            assert pubsub._handle_rpc_now(rpc_pb2.RPC(publish=[message(b"forged")]), p)
            assert node.stats["gossip.forward_dropped"] == 0  # another id: nothing cancelled
            assert pubsub._handle_rpc_now(rpc_pb2.RPC(publish=[message(b"real")]), p)
            assert node.stats["gossip.forward_dropped"] == 1
            assert node.stats["gossip.duplicates"] == 1
            assert queued(p) == []  # the real one dropped; the forged one was not sent back
            assert queued(q) == [b"real", b"forged"]
            assert queued(r) == [b"forged"]
        finally:
            for peer in (p, q, r):
                pubsub.peer_queues.pop(peer, None)
                pubsub.peers.pop(peer, None)
                pubsub.peer_topics["t"].discard(peer)
                router.peer_protocol.pop(peer, None)
            router.mesh["t"] = set()


async def test_more_than_a_window_of_gossip_arrives_handled_inline() -> None:
    """Bytes the sink consumes are credited back (a window update once half the window is
    owed): well over a receive window of small messages all arrive, handled inline."""
    async with (
        Libp2pTransport.open(identity(11), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(12), config=CONFIG) as subscriber,
    ):
        await subscriber.connect(publisher.listen_addrs[0])
        for node in (publisher, subscriber):
            await node.subscribe("t")
        mesh = publisher._pubsub.router.mesh  # type: ignore[union-attr]
        await eventually(lambda: len(mesh.get("t", ())) == 1)
        body = b"w" * 900  # under the IDONTWANT size: handled inline
        count = 3 * 256 * 1024 // len(body) // 2  # 1.5 windows
        got = 0

        async def drain() -> None:
            nonlocal got
            while True:
                await subscriber.receive()
                got += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            for n in range(count):  # in steps the per-peer queue (32 RPCs) always holds
                await publisher.publish("t", body + n.to_bytes(4, "big"))
                if n % 16 == 15:
                    await eventually(lambda n=n: got > n)  # type: ignore[misc]
            await eventually(lambda: got == count)
            nursery.cancel_scope.cancel()
        assert publisher.stats["gossip.dropped_queue_full"] == 0
        stats = subscriber.stats
        assert stats["gossip.rpcs_inline"] >= stats["gossip.rpcs_received"] - 8


async def test_the_inline_push_keeps_py_libp2ps_checks() -> None:
    """The push without an await (``_push_now``) refuses what ``push_msg`` refuses: a
    blacklisted forwarder or origin, a message claiming to be ours that a peer forwards (not
    delivered, not forwarded); and a message on a topic with a validator goes to the task."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.rpc_queue import RpcQueue

    async with Libp2pTransport.open(identity(13), config=CONFIG) as node:
        await node.subscribe("t")
        pubsub: Any = node._pubsub
        router = pubsub.router
        p, q = (ID(identity(n).peer_id.raw) for n in (14, 15))
        for peer in (p, q):
            pubsub.peer_queues[peer] = RpcQueue()
            pubsub.peers[peer] = object()
            pubsub.peer_topics.setdefault("t", set()).add(peer)
            router.peer_protocol[peer] = TProtocol("/meshsub/1.1.0")
        router.mesh["t"] = {p, q}
        evil = ID(identity(16).peer_id.raw)

        def rpc(data: bytes, origin: bytes, topic: str = "t") -> Any:
            message = rpc_pb2.Message(data=data, topicIDs=[topic], from_id=origin, seqno=data)
            return rpc_pb2.RPC(publish=[message])

        try:
            pubsub.blacklisted_peers.add(evil)
            assert pubsub._handle_rpc_now(rpc(b"from-evil", evil.to_bytes()), p)
            assert pubsub._handle_rpc_now(rpc(b"via-evil", q.to_bytes()), evil)
            assert pubsub._handle_rpc_now(rpc(b"claims-ours", node.local_peer.raw), p)
            assert len(pubsub.peer_queues[q]) == 0  # none of them forwarded
            with pytest.raises(trio.WouldBlock):  # nor delivered
                node._inbox_receive.receive_nowait()
            pubsub.set_topic_validator("v", lambda peer, msg: True, False)
            await node.subscribe("v")
            assert not pubsub._handle_rpc_now(rpc(b"validated", q.to_bytes(), "v"), p)
            assert pubsub._handle_rpc_now(rpc(b"fine", q.to_bytes()), p)
            queued = []  # (our subscription to "v" was announced meanwhile)
            while len(pubsub.peer_queues[q]):
                queued += [m.data for m in pubsub.peer_queues[q]._queue.pop().publish]
            assert queued == []  # q is the origin: not sent back
            assert (await receive_n(node, 1))[0].frame == b"fine"
        finally:
            pubsub.blacklisted_peers.discard(evil)
            for peer in (p, q):
                pubsub.peer_queues.pop(peer, None)
                pubsub.peers.pop(peer, None)
                pubsub.peer_topics["t"].discard(peer)
                router.peer_protocol.pop(peer, None)
            router.mesh["t"] = set()


async def test_forwarding_gossip_runs_no_import_statement_per_message() -> None:
    """An import statement in a function is a call into the import system each time it runs
    (a Python call under the ``axl`` command's deferred imports): none runs per message on
    the publish, forward and receive path. Three nodes, each forwarding to the other two."""
    import builtins

    nodes = [identity(n) for n in (21, 22, 23)]
    async with (
        Libp2pTransport.open(nodes[0], config=CONFIG) as a,
        Libp2pTransport.open(nodes[1], config=CONFIG) as b,
        Libp2pTransport.open(nodes[2], config=CONFIG) as c,
    ):
        await b.connect(a.listen_addrs[0])
        await c.connect(a.listen_addrs[0])
        await c.connect(b.listen_addrs[0])
        for node in (a, b, c):
            await node.subscribe("t")
        for node in (a, b, c):
            mesh = node._pubsub.router.mesh  # type: ignore[union-attr]
            await eventually(lambda mesh=mesh: len(mesh.get("t", ())) == 2)  # type: ignore[misc]

        async def rounds(first: int, count: int) -> None:
            for n in range(first, first + count):
                await (a, b, c)[n % 3].publish("t", b"m%d" % n)
            for node in (a, b, c):
                await receive_n(node, count - (count // 3))

        await rounds(0, 9)  # first use of every path
        imported: list[str] = []
        original = builtins.__import__

        def counting(name: str, *args: Any, **kwargs: Any) -> Any:
            imported.append(name)
            return original(name, *args, **kwargs)

        builtins.__import__ = counting
        try:
            await rounds(9, 30)
        finally:
            builtins.__import__ = original
        assert b.stats["gossip.duplicates"] + c.stats["gossip.duplicates"] > 0  # forwards ran
    assert imported == []

"""The transport's pubsub hot path (``axl/_libp2p_pubsub.py``, ``axl/_libp2p_rpc.py``):
coalesced sends per peer, buffered receives, and what hostile RPCs end in.

The attacks: a coalesced RPC mixing genuine, garbage and tampered messages (the genuine ones
are delivered, each bad one rejected and counted by the bus); an RPC over the size cap and a
malformed one (typed, counted refusals, stream reset, the node serves everybody else); a peer
that never drains its queue (bounded, drops counted). Nothing asserts on timing.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from axl import Context, Identity, Libp2pConfig, Libp2pTransport, Message, open_bus
from axl._errors import DecodeError, FrameTooLarge
from axl._libp2p_rpc import RpcDecoder, coalesce
from axl._wire import Kind

from .clusters import eventually

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0xB0 + n]) * 32)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def prefixed(body: bytes) -> bytes:
    return varint(len(body)) + body


class Note(Message, tag="test.pubsub_note"):
    n: int


# -- sans-IO ------------------------------------------------------------------------------------


def test_rpc_decoder_reassembles_rpcs_from_any_chunking() -> None:
    bodies = [b"a", os.urandom(300), os.urandom(20_000), b"z" * 127, b"y" * 128]
    stream = b"".join(prefixed(body) for body in bodies)
    for chunk in (1, 2, 7, 1000, len(stream)):
        decoder = RpcDecoder(65536)
        got: list[bytes] = []
        for start in range(0, len(stream), chunk):
            got += decoder.feed(stream[start : start + chunk])
            assert decoder.buffered <= 20_000 + 3 + chunk
        assert got == bodies
        assert decoder.buffered == 0


def test_rpc_decoder_refuses_an_oversized_length_before_buffering_it() -> None:
    decoder = RpcDecoder(1000)
    with pytest.raises(FrameTooLarge):
        decoder.feed(varint(1001) + b"x" * 10)  # the body has not arrived: refused anyway
    with pytest.raises(DecodeError):
        RpcDecoder(1000).feed(b"\xff" * 11)  # a varint that never ends


def test_coalesce_concatenates_publishes_and_control_within_the_size_cap() -> None:
    from libp2p.pubsub.pb import rpc_pb2

    def publish(n: int) -> Any:
        return rpc_pb2.RPC(publish=[rpc_pb2.Message(data=b"%d" % n + bytes(100), seqno=b"%d" % n)])

    graft = rpc_pb2.RPC(control=rpc_pb2.ControlMessage(graft=[rpc_pb2.ControlGraft(topicID="t")]))
    ihave = rpc_pb2.RPC(
        control=rpc_pb2.ControlMessage(ihave=[rpc_pb2.ControlIHave(topicID="t", messageIDs=[b"i"])])
    )
    rpcs = [publish(0), graft, publish(1), ihave, publish(2)]
    (merged,) = coalesce(rpcs, 1 << 20)
    assert [m.seqno for m in merged.publish] == [b"0", b"1", b"2"]
    assert [g.topicID for g in merged.control.graft] == ["t"]
    assert [list(i.messageIDs) for i in merged.control.ihave] == [[b"i"]]
    assert merged.ByteSize() <= sum(rpc.ByteSize() for rpc in rpcs)
    # Under a cap of about two messages each, nothing is lost and order is kept.
    cap = 2 * publish(0).ByteSize() + 4
    parts = coalesce([publish(n) for n in range(7)], cap)
    assert len(parts) == 4
    assert all(part.ByteSize() <= cap for part in parts)
    assert [m.seqno for part in parts for m in part.publish] == [b"%d" % n for n in range(7)]
    assert coalesce([publish(9)], 10) == [publish(9)]  # alone and over the cap: the caller drops


# -- the writer and its bound -------------------------------------------------------------------


class RecordingStream:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.writes.append(data)


async def test_a_slow_peer_costs_a_bounded_queue_and_its_backlog_goes_out_coalesced() -> None:
    """A peer whose writer is stuck: py-libp2p's per-peer queue holds 32 RPCs, later ones are
    dropped and counted. When the writer runs it sends the whole backlog as one RPC, without
    the signed peer record (sent once, in the stream's hello)."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.rpc_queue import RpcQueue

    async with Libp2pTransport.open(identity(1), config=CONFIG) as node:
        pubsub: Any = node._pubsub
        slow = ID(identity(2).peer_id.raw)
        queue = RpcQueue()
        pubsub.peer_queues[slow] = queue
        for n in range(40):
            message = rpc_pb2.Message(data=b"m%d" % n, seqno=n.to_bytes(8, "big"))
            pubsub.router.send_rpc(slow, rpc_pb2.RPC(publish=[message], senderRecord=b"r" * 205))
        assert len(queue) == 32
        assert node.stats["gossip.dropped_queue_full"] == 8
        queue.close()  # the writer drains what is queued, then ends
        stream = RecordingStream()
        await pubsub.handle_sending_messages(slow, stream, queue)
        del pubsub.peer_queues[slow]
    (written,) = stream.writes
    (body,) = RpcDecoder(1 << 20).feed(written)
    rpc = rpc_pb2.RPC.FromString(body)
    assert [m.data for m in rpc.publish] == [b"m%d" % n for n in range(32)]
    assert not rpc.HasField("senderRecord")


# -- attacks over real connections --------------------------------------------------------------


async def test_one_bad_message_in_a_coalesced_rpc_costs_only_itself() -> None:
    """A rogue peer sends one RPC carrying a victim's two genuine frames (which it may have
    relayed), garbage and a tampered copy. The receiver delivers both genuine messages; the
    bus rejects and counts each bad one; the RPC and the stream stay up."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    victim_id, receiver_id = identity(3), identity(4)
    got: list[int] = []

    async def on_note(message: Note, ctx: Context) -> None:
        assert ctx.sender == victim_id.peer_id
        got.append(message.n)

    async with (
        Libp2pTransport.open(victim_id, config=CONFIG) as victim_t,
        Libp2pTransport.open(receiver_id, config=CONFIG) as receiver_t,
        Libp2pTransport.open(identity(5), config=CONFIG) as rogue,
        open_bus(victim_id, victim_t) as victim,
        open_bus(receiver_id, receiver_t) as receiver,
    ):
        await rogue.connect(receiver_t.listen_addrs[0])
        receiver.on(Note, on_note)
        await receiver.join("notes")
        target = ID(receiver_id.peer_id.raw)
        pubsub: Any = rogue._pubsub
        await eventually(lambda: target in pubsub.peers)

        def message(data: bytes, seqno: int) -> Any:
            return rpc_pb2.Message(
                data=data,
                topicIDs=["notes"],
                from_id=victim_id.peer_id.raw,
                seqno=seqno.to_bytes(8, "big"),
            )

        _, one = victim._frame(Note(n=1), Kind.MESSAGE, topic="notes")
        _, two = victim._frame(Note(n=2), Kind.MESSAGE, topic="notes")
        tampered = two[:-1] + bytes([two[-1] ^ 1])
        rpc = rpc_pb2.RPC(
            publish=[
                message(one, 1),
                message(b"not an envelope", 2),
                message(tampered, 3),
                message(two, 4),
            ]
        )
        assert await pubsub.write_msg(pubsub.peers[target], rpc)
        await eventually(lambda: sorted(got) == [1, 2])
        await eventually(lambda: receiver.stats.total("rejected.") == 2)
        assert receiver_t.stats["gossip.rpcs_received"] >= 1
        assert receiver_t.stats.total("gossip.refused_") == 0  # the RPC itself was fine
        # The stream is still up: a later genuine message on it arrives.
        _, three = victim._frame(Note(n=3), Kind.MESSAGE, topic="notes")
        assert await pubsub.write_msg(
            pubsub.peers[target], rpc_pb2.RPC(publish=[message(three, 5)])
        )
        await eventually(lambda: sorted(got) == [1, 2, 3])


@pytest.mark.parametrize("attack", ["oversized", "malformed"])
async def test_oversized_or_malformed_rpcs_are_refused_counted_and_cost_only_their_stream(
    attack: str,
) -> None:
    """An RPC over the size cap (a real coalesced batch, refused on its length prefix) or a
    protobuf that does not parse: the receiver counts a typed refusal, resets the stream and
    keeps serving its other peers."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    config = Libp2pConfig(
        gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False, max_frame_size=16_384
    )
    victim_id, receiver_id = identity(6), identity(7)
    got: list[int] = []

    async def on_note(message: Note, ctx: Context) -> None:
        got.append(message.n)

    async with (
        Libp2pTransport.open(victim_id, config=config) as victim_t,
        Libp2pTransport.open(receiver_id, config=config) as receiver_t,
        Libp2pTransport.open(identity(8), config=config) as rogue,
        open_bus(victim_id, victim_t) as victim,
        open_bus(receiver_id, receiver_t) as receiver,
    ):
        for node in (victim_t, rogue):
            await node.connect(receiver_t.listen_addrs[0])
        receiver.on(Note, on_note)
        await receiver.join("notes")
        await victim.join("notes")
        target = ID(receiver_id.peer_id.raw)
        pubsub: Any = rogue._pubsub
        await eventually(lambda: target in pubsub.peers)
        await eventually(lambda: receiver_id.peer_id in victim_t.topic_peers("notes"))
        stream = pubsub.peers[target]
        if attack == "oversized":
            batch = rpc_pb2.RPC(
                publish=[
                    rpc_pb2.Message(data=bytes(1000), topicIDs=["notes"], seqno=bytes([n]))
                    for n in range(30)
                ]
            )
            assert batch.ByteSize() > config.max_frame_size + 4096
            await stream.write(prefixed(batch.SerializeToString()))
        else:
            await stream.write(prefixed(b"\xff\xff\xff\xff not a protobuf"))
        reason = "oversized_rpc" if attack == "oversized" else "malformed_rpc"
        await eventually(lambda: receiver_t.stats[f"gossip.refused_{reason}"] == 1)
        await victim.publish("notes", Note(n=7))
        await eventually(lambda: got == [7])


async def test_forwarding_keeps_no_per_message_state_beyond_the_caches() -> None:
    """py-libp2p's publish appended a timestamp per message to a list only adaptive gossip
    (off here) trims, and queued every message for connected peers whose subscription was not
    known yet: both grew with traffic. A subscriber that received 50 messages holds neither.
    (The message cache, bounded by the heartbeat: test_libp2p_swarm.py; here one heartbeat
    at start and none while the test runs, so it holds all 50.)"""
    config = replace(CONFIG, gossip_heartbeat=60.0)
    async with (
        Libp2pTransport.open(identity(9), config=config) as publisher,
        Libp2pTransport.open(identity(10), config=config) as subscriber,
        Libp2pTransport.open(identity(11), config=config) as bystander,  # not subscribed
    ):
        for node in (subscriber, bystander):
            await node.connect(publisher.listen_addrs[0])
        await subscriber.subscribe("ticks")
        await publisher.subscribe("ticks")
        await eventually(lambda: subscriber.local_peer in publisher.topic_peers("ticks"))
        mesh = publisher._pubsub.router.mesh  # type: ignore[union-attr]
        await eventually(lambda: len(mesh.get("ticks", ())) == 1)
        for burst in range(5):  # py-libp2p queues at most 32 RPCs per peer
            for n in range(10 * burst, 10 * burst + 10):
                await publisher.publish("ticks", b"tick %d" % n)
            for n in range(10 * burst, 10 * burst + 10):
                with trio.fail_after(10):
                    assert (await subscriber.receive()).frame == b"tick %d" % n
        for node in (publisher, subscriber):
            router: Any = node._pubsub.router  # type: ignore[union-attr]
            assert sum(map(len, router.recent_message_deliveries.values())) == 0
            assert not router._pending_messages
            assert len(router.mcache.msgs) == 50  # the message cache still holds them


async def test_a_registered_topic_validator_still_runs() -> None:
    """Topics without validators skip py-libp2p's validation step; one with a validator keeps
    it: what the validator refuses is not delivered."""
    async with (
        Libp2pTransport.open(identity(12), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(13), config=CONFIG) as subscriber,
    ):
        await subscriber.connect(publisher.listen_addrs[0])
        pubsub: Any = subscriber._pubsub
        pubsub.set_topic_validator("guarded", lambda peer, msg: msg.data != b"refused", False)
        for topic in ("guarded", "open"):
            await subscriber.subscribe(topic)
            await publisher.subscribe(topic)
        mesh = publisher._pubsub.router.mesh  # type: ignore[union-attr]
        await eventually(lambda: all(len(mesh.get(t, ())) == 1 for t in ("guarded", "open")))
        await publisher.publish("guarded", b"refused")
        await publisher.publish("guarded", b"accepted")
        await publisher.publish("open", b"refused")
        got = []
        for _ in range(2):
            with trio.fail_after(10):
                frame = await subscriber.receive()
            got.append((frame.topic, frame.frame))
        assert sorted(got) == [("guarded", b"accepted"), ("open", b"refused")]


# -- message ids --------------------------------------------------------------------------------


def test_memoised_message_id_follows_the_message_object() -> None:
    """The id memo answers for the very object it computed, so two messages claiming the same
    origin and seqno (a forger's and the victim's) keep distinct, content-bound ids."""
    from libp2p.pubsub.pb import rpc_pb2

    from axl._libp2p_announce import memo_message_id, message_id

    real = rpc_pb2.Message(from_id=b"victim", seqno=b"\x00" * 8, data=b"real", topicIDs=["t"])
    forged = rpc_pb2.Message(from_id=b"victim", seqno=b"\x00" * 8, data=b"fake", topicIDs=["t"])
    first = memo_message_id(forged)
    assert memo_message_id(forged) == first == message_id(forged)
    assert memo_message_id(real) == message_id(real) != first
    assert memo_message_id(forged) == first


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.binary(max_size=16), st.binary(max_size=2048))
def test_the_message_id_is_the_length_prefixed_content_hash(
    origin: bytes, seqno: bytes, data: bytes
) -> None:
    """Every node must compute the same id for a message (IHAVE/IWANT name messages by it,
    across versions): sha256 over each of from, seqno and data prefixed by its 4-byte
    big-endian length, whatever way the hash is fed."""
    import hashlib

    from libp2p.pubsub.pb import rpc_pb2

    from axl._libp2p_announce import message_id

    msg = rpc_pb2.Message(from_id=origin, seqno=seqno, data=data, topicIDs=["t"])
    spec = hashlib.sha256()
    for part in (origin, seqno, data):
        spec.update(len(part).to_bytes(4, "big") + part)
    assert message_id(msg) == spec.digest()


async def test_a_subscription_made_while_a_peer_is_being_added_still_reaches_it() -> None:
    """py-libp2p builds the hello (our subscriptions), writes it, and only then registers
    the peer; a subscription made during that write reached neither the hello nor the
    announcement to registered peers, so the peer never learned it."""
    async with (
        Libp2pTransport.open(identity(20), config=CONFIG) as a,
        Libp2pTransport.open(identity(21), config=CONFIG) as b,
        trio.open_nursery() as nursery,
    ):
        pubsub: Any = a._pubsub
        build_hello = pubsub.get_hello_packet

        def hello_then_subscribe() -> Any:
            packet = build_hello()  # without "late"
            nursery.start_soon(pubsub.subscribe, "late")  # runs while the hello is written
            return packet

        host: Any = a._host
        open_stream = host.new_stream

        async def slow_gossip_stream(peer: Any, protocols: Any, *args: Any, **kw: Any) -> Any:
            stream = await open_stream(peer, protocols, *args, **kw)
            if any("meshsub" in str(protocol) for protocol in protocols):
                write = stream.write

                async def slow_write(data: bytes) -> None:
                    await trio.sleep(0.2)  # the hello's write takes a while
                    await write(data)

                stream.write = slow_write
            return stream

        pubsub.get_hello_packet = hello_then_subscribe
        host.new_stream = slow_gossip_stream
        await b.connect(a.listen_addrs[0])
        await eventually(lambda: a.local_peer in b.topic_peers("late"))
        assert a.stats["gossip.subscriptions_resent"] >= 1

"""Topic delivery semantics, enforced by the bus whatever the transport does: at-most-once per
subscriber, nothing published before the subscriber joined (late joiners, restarts), nothing
older than ``topic_max_age``; and a bus that closes while a frame is on its way.

The transport here replays a topic's whole history to every new subscriber, the way
py-libp2p's GossipSub flushes its queued and cached messages to a peer that (re)subscribes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from hypothesis import given
from hypothesis import strategies as st

from axl import Bus, BusConfig, Context, Identity, Message, PeerId, TransportClosed
from axl._delivery import TopicGate
from axl._transport import InboundFrame
from axl._wire import Kind, decode_frame, encode_frame

PUBLISHER, SUBSCRIBER = (Identity.from_seed(bytes([i]) * 32) for i in (41, 42))


class Tick(Message, tag="test.delivery_tick"):
    n: int


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ReplayingNetwork:
    """Topic history, replayed in full to every new subscription (a misbehaving transport)."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[PeerId, bytes]]] = {}
        self.members: dict[str, set[ReplayingTransport]] = {}


class ReplayingTransport:
    def __init__(self, network: ReplayingNetwork, peer: PeerId) -> None:
        self.network = network
        self.peer = peer
        self.send_channel, self.receive_channel = trio.open_memory_channel[InboundFrame](10_000)

    @property
    def local_peer(self) -> PeerId:
        return self.peer

    async def send(self, peer: PeerId, frame: bytes) -> None:
        raise AssertionError("direct frames are not used here")

    async def publish(self, topic: str, frame: bytes) -> None:
        self.network.history.setdefault(topic, []).append((self.peer, frame))
        for member in self.network.members.get(topic, ()):
            if member is not self:
                member.send_channel.send_nowait(InboundFrame(frame, self.peer, topic))
        await trio.lowlevel.checkpoint()

    async def subscribe(self, topic: str) -> None:
        self.network.members.setdefault(topic, set()).add(self)
        for sender, frame in self.network.history.get(topic, []):
            if sender != self.peer:
                self.send_channel.send_nowait(InboundFrame(frame, sender, topic))
        await trio.lowlevel.checkpoint()

    async def unsubscribe(self, topic: str) -> None:
        self.network.members.get(topic, set()).discard(self)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> InboundFrame:
        try:
            return await self.receive_channel.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed("closed") from None

    async def receive_batch(self, max_frames: int) -> list[InboundFrame]:
        return [await self.receive()]

    async def aclose(self) -> None:
        for members in self.network.members.values():
            members.discard(self)
        self.receive_channel.close()
        await trio.lowlevel.checkpoint()


@asynccontextmanager
async def running(
    identity: Identity, transport: ReplayingTransport, clock: ManualClock
) -> AsyncIterator[Bus]:
    bus = Bus(identity, transport, config=BusConfig(clock=clock))
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        try:
            yield bus
        finally:
            await bus.aclose()


async def settle() -> None:
    for _ in range(20):
        await trio.lowlevel.checkpoint()


async def test_late_joiner_and_restarted_subscriber_get_no_earlier_ticks() -> None:
    network = ReplayingNetwork()
    clock = ManualClock()
    handled: list[int] = []  # the subscriber's persisted record, kept across its restart

    async def on_tick(message: Tick, ctx: Context) -> None:
        handled.append(message.n)

    async with running(PUBLISHER, ReplayingTransport(network, PUBLISHER.peer_id), clock) as pub:
        for n in range(5):  # before anybody subscribed
            await pub.publish("ticks", Tick(n=n))
            clock.now += 1.0

        async with running(
            SUBSCRIBER, ReplayingTransport(network, SUBSCRIBER.peer_id), clock
        ) as sub:
            sub.on(Tick, on_tick)
            await sub.join("ticks")  # the transport replays ticks 0..4 now
            for n in range(5, 10):
                await pub.publish("ticks", Tick(n=n))
                clock.now += 1.0
            await settle()
            assert handled == [5, 6, 7, 8, 9]  # the late joiner got no earlier tick
            assert sub.stats["dropped.topic_before_join"] == 5, sub.stats.snapshot()

        clock.now += 2.0  # the subscriber restarts (same identity, new bus and transport)
        async with running(
            SUBSCRIBER, ReplayingTransport(network, SUBSCRIBER.peer_id), clock
        ) as restarted:
            restarted.on(Tick, on_tick)
            await restarted.join("ticks")  # ticks 0..9 replayed: all handled or never wanted
            await pub.publish("ticks", Tick(n=10))
            await settle()
            assert handled == [5, 6, 7, 8, 9, 10]  # no tick twice, no old tick
            assert restarted.stats["dropped.topic_before_join"] == 10


async def test_topic_messages_older_than_the_bound_are_dropped() -> None:
    network = ReplayingNetwork()
    publisher_clock, subscriber_clock = ManualClock(), ManualClock()
    handled: list[int] = []

    async def on_tick(message: Tick, ctx: Context) -> None:
        handled.append(message.n)

    async with (
        running(PUBLISHER, ReplayingTransport(network, PUBLISHER.peer_id), publisher_clock) as pub,
        running(
            SUBSCRIBER, ReplayingTransport(network, SUBSCRIBER.peer_id), subscriber_clock
        ) as sub,
    ):
        sub.on(Tick, on_tick)
        await sub.join("ticks")
        # The subscriber's clock runs ahead: the frame arrives as if delayed in transit.
        subscriber_clock.now += BusConfig().topic_max_age + 1
        await pub.publish("ticks", Tick(n=1))  # arrives 11 s old: dropped
        publisher_clock.now = subscriber_clock.now - BusConfig().topic_max_age + 1
        await pub.publish("ticks", Tick(n=2))  # 9 s old: within the bound
        await settle()
        assert handled == [2]
        assert sub.stats["dropped.topic_stale"] == 1


async def test_frames_of_a_topic_we_left_are_dropped() -> None:
    network = ReplayingNetwork()
    clock = ManualClock()
    handled: list[int] = []

    async def on_tick(message: Tick, ctx: Context) -> None:
        handled.append(message.n)

    publisher_transport = ReplayingTransport(network, PUBLISHER.peer_id)
    subscriber_transport = ReplayingTransport(network, SUBSCRIBER.peer_id)
    async with (
        running(PUBLISHER, publisher_transport, clock) as pub,
        running(SUBSCRIBER, subscriber_transport, clock) as sub,
    ):
        sub.on(Tick, on_tick)
        await sub.join("ticks")
        await sub.leave("ticks")
        # A frame the transport had already queued before the leave took effect.
        frame = pub._frame(Tick(n=1), Kind.MESSAGE, topic="ticks")[1]
        subscriber_transport.send_channel.send_nowait(
            InboundFrame(frame, PUBLISHER.peer_id, "ticks")
        )
        await settle()
        assert handled == []
        assert sub.stats["dropped.topic_not_joined"] == 1


async def test_a_frame_arriving_as_the_bus_closes_is_dropped_cleanly() -> None:
    """SIGTERM under load: the receive loop can be handed a frame in the same step in which
    the bus closes. It must be dropped and counted, not crash the bus's task."""
    network = ReplayingNetwork()
    clock = ManualClock()
    transport = ReplayingTransport(network, SUBSCRIBER.peer_id)
    sender = Bus(
        PUBLISHER, ReplayingTransport(network, PUBLISHER.peer_id), config=BusConfig(clock=clock)
    )
    bus = Bus(SUBSCRIBER, transport, config=BusConfig(clock=clock))

    async def on_tick(message: Tick, ctx: Context) -> None:
        pass

    bus.on(Tick, on_tick)
    frame = sender._frame(Tick(n=1), Kind.MESSAGE, topic="ticks")[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        await bus.join("ticks")
        await settle()  # the receive loop now waits in transport.receive()
        transport.send_channel.send_nowait(InboundFrame(frame, PUBLISHER.peer_id, "ticks"))
        await bus.aclose()  # same scheduling step: the frame is already handed over
    assert bus.closed
    assert bus.stats["dropped.closing"] == 1


@given(
    joined=st.integers(0, 2**40),
    published=st.integers(0, 2**40),
    now=st.integers(0, 2**40),
    max_age=st.integers(0, 10**6),
)
def test_the_topic_gate_admits_exactly_fresh_messages_published_after_the_join(
    joined: int, published: int, now: int, max_age: int
) -> None:
    gate = TopicGate(max_age)
    gate.joining("t", joined)
    assert gate.joining("t", joined + 1) == joined  # a second join keeps the first time
    envelope = decode_frame(
        encode_frame(
            PUBLISHER,
            kind=Kind.MESSAGE,
            type=Tick.axl_tag,
            version=1,
            recipient=None,
            topic="t",
            message_id=bytes(16),
            reply_to=None,
            timestamp_ms=published,
            nonce=1,
            payload=Tick(n=1).encode_payload(),
        )
    )
    admitted = published >= joined and now - published <= max_age
    assert (gate.refusal(envelope, now) is None) == admitted
    gate.left("t")
    assert gate.refusal(envelope, now) == "topic_not_joined"

"""Libp2pTransport in one process: real hosts on 127.0.0.1 (TCP, Noise, yamux, GossipSub).

Everything waits on conditions with deadlines; nothing asserts on timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

from axl import (
    Bus,
    BusConfig,
    Context,
    FrameTooLarge,
    Identity,
    Libp2pConfig,
    Libp2pTransport,
    Message,
    PeerId,
    PeerUnreachable,
    RequestTimeout,
    TransportClosed,
    open_bus,
)
from axl._libp2p import PEER_EXCHANGE_TOPIC, PROTOCOL_ID

from .clusters import eventually as poll_until

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0)


class Note(Message, tag="test.libp2p_note"):
    n: int
    body: bytes = b""


class NoteBack(Message, tag="test.libp2p_note_back"):
    n: int


async def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    await poll_until(predicate, timeout, poll=0.01)


@asynccontextmanager
async def star(
    count: int, config: Libp2pConfig = CONFIG
) -> AsyncIterator[tuple[list[Libp2pTransport], list[Bus]]]:
    """``count`` nodes; node 0 is the bootstrap node, the others only know its address."""
    identities = [Identity.from_seed(bytes([0x40 + i]) * 32) for i in range(count)]
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(Libp2pTransport.open(identities[0], config=config))
        transports = [first]
        for identity in identities[1:]:
            transports.append(
                await stack.enter_async_context(
                    Libp2pTransport.open(identity, bootstrap=first.listen_addrs, config=config)
                )
            )
        buses = [
            await stack.enter_async_context(open_bus(identity, transport))
            for identity, transport in zip(identities, transports, strict=True)
        ]
        yield transports, buses


async def test_peer_id_is_the_identity_and_addresses_carry_it() -> None:
    identity = Identity.from_seed(b"\x33" * 32)
    async with Libp2pTransport.open(identity, config=CONFIG) as transport:
        assert transport.local_peer == identity.peer_id
        (addr,) = transport.listen_addrs
        assert addr.startswith("/ip4/127.0.0.1/tcp/")
        assert addr.endswith(f"/p2p/{identity.peer_id}")
    with pytest.raises(TransportClosed):
        await transport.receive()
    with pytest.raises(TransportClosed):
        await transport.send(Identity.generate().peer_id, b"x")


async def test_three_nodes_discover_each_other_through_the_bootstrap_node() -> None:
    async with star(3) as (transports, (a, b, c)):
        # b and c only know a; peer exchange gives them each other's addresses.
        await eventually(lambda: c.peer_id in transports[1].known_peers())
        await eventually(lambda: b.peer_id in transports[2].known_peers())
        assert transports[2].stats["peer_list.learned"] >= 1  # asked a for its peers

        got: list[tuple[int, PeerId, str | None]] = []

        async def on_note(message: Note, ctx: Context) -> NoteBack | None:
            got.append((message.n, ctx.sender, ctx.topic))
            return NoteBack(n=message.n + 1) if ctx.is_request else None

        c.on(Note, on_note)
        await b.send(c.peer_id, Note(n=1))
        await eventually(lambda: got)
        assert got == [(1, b.peer_id, None)]
        assert c.peer_id in transports[1].connected_peers()  # a direct b-c connection

        reply = await b.request(c.peer_id, Note(n=41), timeout=5)
        assert reply == NoteBack(n=42)

        # Topics: everyone subscribes, then each publishes once; nobody hears itself.
        subs_got: dict[PeerId, list[tuple[int, PeerId]]] = {bus.peer_id: [] for bus in (a, b, c)}
        async with AsyncExitStack() as stack:
            subs = [await stack.enter_async_context(bus.subscribe("room")) for bus in (a, b, c)]
            await eventually(
                lambda: all(len(t.topic_peers("room")) == 2 for t in transports), timeout=10
            )
            for bus in (a, b, c):
                await bus.publish("room", Note(n=len(subs_got[bus.peer_id])))

            async def drain(bus: Bus, sub: object) -> None:
                for _ in range(2):
                    delivery = await sub.receive()  # type: ignore[attr-defined]
                    subs_got[bus.peer_id].append((delivery.message.n, delivery.sender))

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    for bus, sub in zip((a, b, c), subs, strict=True):
                        nursery.start_soon(drain, bus, sub)
        for bus in (a, b, c):
            senders = {sender for _, sender in subs_got[bus.peer_id]}
            assert senders == {a.peer_id, b.peer_id, c.peer_id} - {bus.peer_id}


async def test_many_frames_are_batched_into_few_writes() -> None:
    async with star(2) as (transports, (a, b)):
        got: list[int] = []

        async def on_note(message: Note, ctx: Context) -> None:
            got.append(message.n)

        b.on(Note, on_note)
        count = 500
        for n in range(count):
            await a.send(b.peer_id, Note(n=n))
        await eventually(lambda: len(got) == count)
        assert got == list(range(count))
        stats = transports[0].stats
        assert stats["frames.sent"] == count
        assert stats["writes"] < count  # several frames went out per stream write
        assert stats["links.opened"] == 1  # one long-lived stream, reused


async def test_sporadic_frames_take_the_fast_path_and_keep_their_order() -> None:
    async with star(2) as (transports, (a, b)):
        got: list[int] = []

        async def on_note(message: Note, ctx: Context) -> None:
            got.append(message.n)

        b.on(Note, on_note)
        for n in range(5):  # sporadic: each written by its sender, no writer wake-up
            await a.send(b.peer_id, Note(n=n))
            with trio.fail_after(10):
                while len(got) <= n:
                    await trio.sleep(0.005)
        for n in range(5, 205):  # streaming: queued and batched behind any direct write
            await a.send(b.peer_id, Note(n=n))
        await eventually(lambda: len(got) == 205)
        assert got == list(range(205))
        stats = transports[0].stats
        assert stats["writes.direct"] >= 5
        assert stats["writes"] < stats["frames.sent"] == 205


async def test_unknown_peer_is_unreachable_and_backoff_fails_fast() -> None:
    async with star(1) as (transports, _):
        stranger = Identity.generate().peer_id
        with pytest.raises(PeerUnreachable):
            await transports[0].send(stranger, b"hello")
        with pytest.raises(PeerUnreachable, match="next dial"):
            await transports[0].send(stranger, b"hello")
        with pytest.raises(FrameTooLarge):
            await transports[0].send(stranger, b"x" * (CONFIG.max_frame_size + 1))
        with pytest.raises(ValueError):
            await transports[0].subscribe(PEER_EXCHANGE_TOPIC)


async def test_a_restarted_peer_that_dials_back_is_not_refused_by_the_dial_backoff() -> None:
    """Sends to a peer that was down build a dial backoff (up to reconnect_max); once the
    restarted peer connects to us again, sends to it go through at once instead of failing
    with "next dial in ..." until the backoff runs out."""
    patient = Libp2pConfig(
        gossip_heartbeat=0.2, dial_timeout=3.0, reconnect_base=60.0, reconnect_max=60.0
    )
    restarted = Identity.from_seed(b"\x5a" * 32)
    async with Libp2pTransport.open(Identity.from_seed(b"\x59" * 32), config=patient) as a:
        with pytest.raises(PeerUnreachable):  # down: the dial fails and the backoff starts
            await a.send(restarted.peer_id, b"hello")
        with pytest.raises(PeerUnreachable, match="next dial"):
            await a.send(restarted.peer_id, b"hello")
        async with Libp2pTransport.open(restarted, config=CONFIG) as b:
            await b.connect(a.listen_addrs[0])
            await eventually(lambda: b.local_peer in a.connected_peers())
            await a.send(restarted.peer_id, b"back")
            with trio.fail_after(10):
                assert (await b.receive()).frame == b"back"
        assert a.stats["peers.backoff_cleared"] == 1


async def test_killed_peer_mid_stream_fails_typed_and_live_peers_keep_flowing() -> None:
    async with star(3) as (transports, (a, b, c)):
        received: dict[PeerId, int] = {b.peer_id: 0, c.peer_id: 0}

        async def on_note(message: Note, ctx: Context) -> NoteBack:
            received[ctx.bus.peer_id] += 1
            return NoteBack(n=message.n)

        b.on(Note, on_note)
        c.on(Note, on_note)
        await eventually(lambda: b.peer_id in transports[0].known_peers())
        await a.request(b.peer_id, Note(n=0), timeout=5)

        outcomes: list[str] = []

        async def stream_to_b() -> None:
            try:
                for n in range(1_000_000):
                    await a.send(b.peer_id, Note(n=n, body=b"z" * 200))
            except PeerUnreachable:
                outcomes.append("unreachable")

        async def ask_b_forever() -> None:
            try:
                while True:
                    await a.request(b.peer_id, Note(n=1), timeout=1.0)
            except (RequestTimeout, PeerUnreachable) as exc:
                outcomes.append(type(exc).__name__)

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream_to_b)
                nursery.start_soon(ask_b_forever)
                await eventually(lambda: received[b.peer_id] > 50)
                await transports[1].aclose()  # b dies mid-stream
        assert outcomes[0] in {"unreachable", "RequestTimeout", "PeerUnreachable"}
        assert len(outcomes) == 2

        # Live peers still answer, and b stays unreachable without hanging anyone.
        assert await a.request(c.peer_id, Note(n=7), timeout=5) == NoteBack(n=7)
        with trio.fail_after(10), pytest.raises((PeerUnreachable, RequestTimeout)):
            await a.request(b.peer_id, Note(n=8), timeout=2)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff\xff\xff\xff" + b"GARBAGE" * 100,  # announces a 4 GiB frame
        b"\x00\x00\x00\x00",  # zero-length frame
        (2 * CONFIG.max_frame_size).to_bytes(4, "big") + b"x" * 1000,  # over the cap
    ],
    ids=["huge-length", "zero-length", "over-cap"],
)
async def test_raw_client_sending_garbage_is_cut_off_and_the_node_keeps_serving(
    garbage: bytes,
) -> None:
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    async with star(2) as (transports, (a, b)):

        async def on_note(message: Note, ctx: Context) -> NoteBack:
            return NoteBack(n=message.n)

        a.on(Note, on_note)
        node = transports[0]
        host = new_host(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
        async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            info = info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0]))
            await host.connect(info)
            stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
            await stream.write(garbage)
            await eventually(lambda: node.stats["peers.cut_off"] == 1)
            with trio.fail_after(10), pytest.raises(Exception):  # noqa: B017 - reset or EOF
                while True:
                    await stream.write(b"\x00\x00\x00\x01x")
                    await trio.sleep(0.02)
            await eventually(lambda: info.peer_id not in host.get_connected_peers())
            # Coming back within the ban time: the stream is refused.
            with trio.fail_after(10):
                try:
                    await host.connect(info)
                    again = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
                    await again.write(b"\x00\x00\x00\x01x")
                    await again.read(1)
                except Exception:
                    pass
            await eventually(lambda: node.stats["inbound.refused_banned"] >= 1)
        # The node still serves its real peers.
        assert await b.request(a.peer_id, Note(n=3), timeout=5) == NoteBack(n=3)
        assert a.stats["received"] >= 1


async def test_well_framed_junk_reaches_the_bus_which_rejects_it() -> None:
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    async with star(1) as (transports, (a,)):
        node = transports[0]
        host = new_host(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
        async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            info = info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0]))
            await host.connect(info)
            stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
            await stream.write(b"\x00\x00\x00\x05hello" * 3)
            await eventually(lambda: a.stats.total("rejected.") == 3)
        assert node.stats["peers.cut_off"] == 0


async def test_inbound_rate_limit_throttles_a_flooding_peer() -> None:
    slow = Libp2pConfig(gossip_heartbeat=0.2, rate_limit=200.0, rate_burst=20)
    async with star(2, slow) as (transports, (a, b)):
        got: list[int] = []

        async def on_note(message: Note, ctx: Context) -> None:
            got.append(message.n)

        b.on(Note, on_note)
        for n in range(100):
            await a.send(b.peer_id, Note(n=n))
        await eventually(lambda: len(got) == 100)
        assert got == list(range(100))  # nothing lost: throttling is backpressure
        assert transports[1].stats["inbound.throttled"] >= 1


async def test_bus_level_frame_cap_and_transport_cap_agree() -> None:
    small = BusConfig(max_frame_size=2048)
    identity = Identity.from_seed(b"\x51" * 32)
    async with (
        Libp2pTransport.open(identity, config=CONFIG) as transport,
        open_bus(identity, transport, config=small) as bus,
    ):
        with pytest.raises(FrameTooLarge):
            await bus.send(Identity.generate().peer_id, Note(n=1, body=b"x" * 4096))


async def test_quic_listen_address_works_alongside_tcp() -> None:
    quic = Libp2pConfig(
        listen=("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"), gossip_heartbeat=0.2
    )
    alice_id, bob_id = Identity.from_seed(b"\x61" * 32), Identity.from_seed(b"\x62" * 32)
    async with (
        Libp2pTransport.open(alice_id, config=quic) as alice_t,
        Libp2pTransport.open(bob_id, config=quic) as bob_t,
        open_bus(alice_id, alice_t) as alice,
        open_bus(bob_id, bob_t) as bob,
    ):
        (quic_addr,) = [addr for addr in bob_t.listen_addrs if "/quic-v1/" in addr]
        await alice_t.connect(quic_addr)

        async def on_note(message: Note, ctx: Context) -> NoteBack:
            return NoteBack(n=message.n)

        bob.on(Note, on_note)
        assert await alice.request(bob.peer_id, Note(n=9), timeout=5) == NoteBack(n=9)


async def test_idle_links_are_closed_and_reopened_on_demand() -> None:
    idle = Libp2pConfig(gossip_heartbeat=0.2, link_idle_timeout=0.3)
    async with star(2, idle) as (transports, (a, b)):
        got: list[int] = []

        async def on_note(message: Note, ctx: Context) -> None:
            got.append(message.n)

        b.on(Note, on_note)
        await a.send(b.peer_id, Note(n=1))
        await eventually(lambda: transports[0].stats["links.idle_closed"] == 1)
        await a.send(b.peer_id, Note(n=2))
        await eventually(lambda: got == [1, 2])
        assert transports[0].stats["links.opened"] == 2


async def test_a_peer_that_stops_reading_is_dropped_after_the_write_timeout() -> None:
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol

    from axl._libp2p_base import peer_id_of

    stuck = Libp2pConfig(gossip_heartbeat=0.2, write_timeout=0.5)
    identity = Identity.from_seed(b"\x71" * 32)
    host = new_host(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])

    async def never_read(stream: object) -> None:
        await trio.sleep_forever()

    host.set_stream_handler(TProtocol(PROTOCOL_ID), never_read)
    async with (
        host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        Libp2pTransport.open(identity, config=stuck) as transport,
    ):
        peer = peer_id_of(host.get_id().to_bytes())
        assert peer is not None
        await transport.connect(str(host.get_addrs()[0]))
        with trio.fail_after(20), pytest.raises(PeerUnreachable, match="stopped reading"):
            while True:  # the stream's flow-control window fills, then the write stalls
                await transport.send(peer, b"x" * 60_000)
        assert transport.stats["links.write_timeout"] == 1


async def test_topic_frames_go_straight_to_the_bounded_inbox_and_overflow_is_counted() -> None:
    """Pubsub hands each new topic message to the inbox in the task that read it (no pump
    task): in order, at most ``inbox_capacity`` held, the rest dropped and counted."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, inbox_capacity=4)
    a_id, b_id = Identity.from_seed(b"\x51" * 32), Identity.from_seed(b"\x52" * 32)
    async with (
        Libp2pTransport.open(a_id, config=config) as a,
        Libp2pTransport.open(b_id, bootstrap=a.listen_addrs, config=config) as b,
    ):
        await a.subscribe("t")
        await b.subscribe("t")
        assert "t" in b._receivers()  # handed over by pubsub itself, no pump task
        await eventually(lambda: b.local_peer in a.topic_peers("t"))
        for n in range(10):
            await a.publish("t", bytes([n]) * 8)
        await eventually(lambda: b.stats["dropped.topic_inbox_full"] == 6)
        got = await b.receive_batch(10)
        assert [(f.frame, f.via, f.topic) for f in got] == [
            (bytes([n]) * 8, a.local_peer, "t") for n in range(4)
        ]
        await b.unsubscribe("t")
        assert "t" not in b._receivers()

"""The transport conformance suite: the same bus-level behaviour over every transport.

Parametrised by ``cluster_factory`` (see ``clusters.py``): memory and libp2p.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

from axl import (
    Bus,
    BusConfig,
    Context,
    FrameTooLarge,
    Identity,
    Message,
    PeerUnreachable,
    RemoteError,
    RequestTimeout,
    open_bus,
)

from .clusters import Cluster, ClusterFactory
from .clusters import eventually as poll_until


class Hello(Message, tag="test.conf_hello"):
    n: int
    body: bytes = b""


class Echo(Message, tag="test.conf_echo"):
    n: int


class Boom(Message, tag="test.conf_boom"):
    pass


class Orphan(Message, tag="test.conf_orphan"):
    pass


CONFIG = BusConfig(max_frame_size=64 * 1024, request_timeout=5.0)


@asynccontextmanager
async def buses(
    factory: ClusterFactory, identities: list[Identity]
) -> AsyncIterator[tuple[Cluster, list[Bus]]]:
    async with factory(identities) as cluster, AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(open_bus(identity, transport, config=CONFIG))
            for identity, transport in zip(cluster.identities, cluster.transports, strict=True)
        ]
        yield cluster, opened


async def eventually(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    await poll_until(predicate, timeout, poll=0.01)


async def test_direct_message_reaches_the_handler_with_its_sender(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (_, (alice, bob)):
        got: list[tuple[int, object]] = []

        async def on_hello(message: Hello, ctx: Context) -> None:
            got.append((message.n, ctx.sender))

        bob.on(Hello, on_hello)
        await alice.send(bob.peer_id, Hello(n=1))
        await eventually(lambda: got)
        assert got == [(1, alice.peer_id)]


async def test_direct_messages_from_one_sender_keep_their_order(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (_, (alice, bob)):
        got: list[int] = []

        async def on_hello(message: Hello, ctx: Context) -> None:
            got.append(message.n)

        bob.on(Hello, on_hello)
        for n in range(200):
            await alice.send(bob.peer_id, Hello(n=n))
        await eventually(lambda: len(got) == 200)
        # Handlers run concurrently, but with no awaits inside they start in arrival order.
        assert got == list(range(200))


async def test_request_response(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:3]) as (_, (alice, bob, carol)):

        async def on_hello(message: Hello, ctx: Context) -> Echo:
            return Echo(n=message.n * 2)

        bob.on(Hello, on_hello)

        async def ask(bus: Bus, n: int, results: dict[int, int]) -> None:
            reply = await bus.request(bob.peer_id, Hello(n=n), timeout=10)
            assert isinstance(reply, Echo)
            results[n] = reply.n

        results: dict[int, int] = {}
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(ask, alice if n % 2 else carol, n, results)
        assert results == {n: 2 * n for n in range(20)}


async def test_handler_errors_become_typed_remote_errors(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (_, (alice, bob)):

        async def on_boom(message: Boom, ctx: Context) -> None:
            raise ValueError("kaboom")

        async def on_hello(message: Hello, ctx: Context) -> None:
            raise RemoteError("not_allowed", "no hellos today")

        bob.on(Boom, on_boom)
        bob.on(Hello, on_hello)
        with pytest.raises(RemoteError) as info:
            await alice.request(bob.peer_id, Boom())
        assert info.value.code == "handler_error"
        assert "kaboom" in info.value.detail
        with pytest.raises(RemoteError) as info:
            await alice.request(bob.peer_id, Hello(n=1))
        assert info.value.code == "not_allowed"
        with pytest.raises(RemoteError) as info:
            await alice.request(bob.peer_id, Orphan())
        assert info.value.code == "no_handler"
        assert bob.stats["handler_errors"] == 2


async def test_topics_reach_subscribers_only(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:4]) as (cluster, (alice, bob, carol, dave)):
        async with bob.subscribe("news") as bob_news, carol.subscribe("news") as carol_news:
            await alice.join("news")  # the publisher's own subscription must not echo
            dave_got: list[int] = []

            async def on_hello(message: Hello, ctx: Context) -> None:
                dave_got.append(message.n)

            dave.on(Hello, on_hello)
            await dave.join("sport")
            await cluster.settle()
            await alice.publish("news", Hello(n=7))
            with trio.fail_after(10):
                for subscription in (bob_news, carol_news):
                    delivery = await subscription.receive()
                    assert delivery.message == Hello(n=7)
                    assert delivery.sender == alice.peer_id
                    assert delivery.envelope.topic == "news"
            await trio.sleep(0.2)
            assert dave_got == []
            assert alice.stats["received"] == 0


async def test_topic_messages_reach_type_handlers_of_joined_topics(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (cluster, (alice, bob)):
        got: list[tuple[int, str | None]] = []

        async def on_hello(message: Hello, ctx: Context) -> None:
            got.append((message.n, ctx.topic))

        bob.on(Hello, on_hello)
        await bob.join("market")
        await cluster.settle()
        await alice.publish("market", Hello(n=3))
        await eventually(lambda: got)
        assert got == [(3, "market")]


async def test_leaving_a_topic_stops_delivery(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (cluster, (alice, bob)):
        got: list[int] = []

        async def on_hello(message: Hello, ctx: Context) -> None:
            got.append(message.n)

        bob.on(Hello, on_hello)
        await bob.join("t")
        await cluster.settle()
        await alice.publish("t", Hello(n=1))
        await eventually(lambda: got == [1])
        await bob.leave("t")
        await cluster.settle()
        await alice.publish("t", Hello(n=2))
        await trio.sleep(0.3)
        assert got == [1]


async def test_oversized_messages_are_refused_at_the_sender(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (_, (alice, bob)):
        with pytest.raises(FrameTooLarge):
            await alice.send(bob.peer_id, Hello(n=1, body=b"x" * (CONFIG.max_frame_size + 1)))
        assert alice.stats["sent"] == 0


async def test_large_message_under_the_cap_is_delivered(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (_, (alice, bob)):
        got: list[int] = []

        async def on_hello(message: Hello, ctx: Context) -> None:
            got.append(len(message.body))

        bob.on(Hello, on_hello)
        await alice.send(bob.peer_id, Hello(n=1, body=b"y" * (CONFIG.max_frame_size - 500)))
        await eventually(lambda: got)
        assert got == [CONFIG.max_frame_size - 500]


async def test_requests_to_a_dead_peer_fail_typed_and_nothing_hangs(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:3]) as (cluster, (alice, bob, carol)):

        async def on_hello(message: Hello, ctx: Context) -> Echo:
            return Echo(n=message.n)

        carol.on(Hello, on_hello)
        await cluster.kill(1)
        with trio.fail_after(10), pytest.raises((RequestTimeout, PeerUnreachable)):
            await alice.request(bob.peer_id, Hello(n=1), timeout=2)
        # live peers still answer
        reply = await alice.request(carol.peer_id, Hello(n=5), timeout=5)
        assert reply == Echo(n=5)


async def test_a_cancelled_subscribe_can_be_retried(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (cluster, (alice, bob)):
        with trio.CancelScope() as scope:
            scope.cancel()
            async with bob.subscribe("news"):
                pytest.fail("the subscription must not open under a cancelled scope")
        assert bob._subscriptions == {}
        async with bob.subscribe("news") as news:
            await cluster.settle()
            await alice.publish("news", Hello(n=2))
            with trio.fail_after(10):
                assert (await news.receive()).message == Hello(n=2)


async def test_messages_and_requests_to_ourselves_are_handled(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    """A node that asks itself (the Directory's own ``find``) gets an answer, not silence."""
    async with buses(cluster_factory, identities[:1]) as (_, (alice,)):
        got: list[int] = []

        async def on_hello(message: Hello, ctx: Context) -> Echo:
            got.append(message.n)
            assert ctx.sender == alice.peer_id
            return Echo(n=message.n + 1)

        alice.on(Hello, on_hello)
        await alice.send(alice.peer_id, Hello(n=1))
        await eventually(lambda: got == [1])
        with trio.fail_after(5):
            assert await alice.request(alice.peer_id, Hello(n=2), timeout=5) == Echo(n=3)
        assert got == [1, 2]


async def test_receive_batch_returns_queued_frames_in_order_up_to_the_limit(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with cluster_factory(identities[:2]) as cluster:
        alice, bob = cluster.transports
        frames = [b"frame-%03d" % n for n in range(40)]
        for frame in frames:
            await alice.send(bob.local_peer, frame)
        got: list[bytes] = []
        with trio.fail_after(10):
            while len(got) < len(frames):
                batch = await bob.receive_batch(16)
                assert 1 <= len(batch) <= 16
                assert all(item.via == alice.local_peer and not item.trusted for item in batch)
                got.extend(item.frame for item in batch)
        assert got == frames


async def test_send_many_arrives_complete_and_in_order(
    cluster_factory: ClusterFactory, identities: list[Identity]
) -> None:
    async with buses(cluster_factory, identities[:2]) as (_, (alice, bob)):
        got: list[int] = []

        async def on_hello(message: Hello, ctx: Context) -> None:
            got.append(message.n)

        bob.on(Hello, on_hello)
        for start in (0, 100):
            await alice.send_many(bob.peer_id, [Hello(n=n) for n in range(start, start + 100)])
        await eventually(lambda: len(got) == 200)
        assert got == list(range(200))
        assert bob.stats.total("rejected.") == 0

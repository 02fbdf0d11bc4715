"""The memory network leaves a published frame out of the inboxes of the receivers whose bus
would drop it unread (a plain message of a type without handler, on a topic without
subscription streams): precise, never a frame a receiver would act on or reject."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from axl import Bus, Context, Identity, MemoryNetwork, MemoryTransport, Message, open_bus
from axl._wire import Kind

from .frames import frame_of

ALICE = Identity.from_seed(b"\x71" * 32)
HANDLERS = [Identity.from_seed(bytes([0x72 + i]) * 32) for i in range(3)]
OTHERS = [Identity.from_seed(bytes([0x78 + i]) * 32) for i in range(3)]
TOPIC = "test.interest"


class Wanted(Message, tag="test.interest_wanted"):
    n: int


class Unwanted(Message, tag="test.interest_unwanted"):
    n: int


def alice_frame(message: Message, n: int, *, kind: Kind = Kind.MESSAGE, tag: str = "") -> bytes:
    return frame_of(ALICE, message, n, kind=kind, topic=TOPIC, tag=tag)


@asynccontextmanager
async def swarm(
    network: MemoryNetwork,
) -> AsyncIterator[tuple[dict[Identity, MemoryTransport], dict[Identity, Bus], list[int]]]:
    """ALICE and the receivers on TOPIC: HANDLERS handle ``Wanted``, OTHERS ``Unwanted``."""
    got: list[int] = []

    async def on_message(message: Message, ctx: Context) -> None:
        assert isinstance(message, Wanted | Unwanted)
        got.append(message.n)

    async with AsyncExitStack() as stack:
        transports: dict[Identity, MemoryTransport] = {}
        buses: dict[Identity, Bus] = {}
        for identity in [ALICE, *HANDLERS, *OTHERS]:
            transport = await stack.enter_async_context(network.connect(identity.peer_id))
            transports[identity] = transport
            bus = buses[identity] = await stack.enter_async_context(open_bus(identity, transport))
            if identity is not ALICE:
                bus.on(Wanted if identity in HANDLERS else Unwanted, on_message)
                await bus.join(TOPIC)
        yield transports, buses, got


async def settle() -> None:
    for _ in range(20):
        await trio.sleep(0.005)


def stat(buses: dict[Identity, Bus], group: list[Identity], key: str) -> int:
    return sum(buses[identity].stats[key] for identity in group)


async def test_a_message_reaches_only_the_receivers_with_a_handler_for_its_type() -> None:
    network = MemoryNetwork()
    async with swarm(network) as (_transports, buses, got):
        await buses[ALICE].publish(TOPIC, Wanted(n=1))
        await buses[ALICE].publish(TOPIC, Unwanted(n=2))
        await settle()
        assert sorted(got) == [1] * len(HANDLERS) + [2] * len(OTHERS)
        assert network.stats.uninterested == len(HANDLERS) + len(OTHERS)
        assert network.stats.delivered == len(HANDLERS) + len(OTHERS)
        everyone = HANDLERS + OTHERS
        assert stat(buses, everyone, "dropped.unhandled") == 0
        assert stat(buses, everyone, "received") == len(everyone)


async def test_without_an_interest_every_subscriber_receives_and_drops_unhandled() -> None:
    network = MemoryNetwork()
    async with swarm(network) as (transports, buses, got):
        for identity in OTHERS:
            transports[identity].set_interest(None)
        await buses[ALICE].publish(TOPIC, Wanted(n=1))
        await settle()
        assert got == [1] * len(HANDLERS)
        assert network.stats.uninterested == 0
        assert stat(buses, OTHERS, "dropped.unhandled") == len(OTHERS)


async def test_a_subscription_stream_receives_every_type() -> None:
    network = MemoryNetwork()
    async with swarm(network) as (_transports, buses, _got):
        async with buses[OTHERS[0]].subscribe(TOPIC) as subscription:
            await buses[ALICE].publish(TOPIC, Wanted(n=7))
            with trio.fail_after(1):
                delivery = await subscription.receive()
        assert delivery.message == Wanted(n=7)
        assert network.stats.uninterested == len(OTHERS) - 1


async def test_a_forged_signature_on_a_handled_type_still_arrives_and_is_rejected() -> None:
    network = MemoryNetwork()
    async with swarm(network) as (transports, buses, got):
        frame = alice_frame(Wanted(n=3), 3)
        forged = frame[:-1] + bytes([frame[-1] ^ 1])
        await transports[ALICE].publish(TOPIC, forged)
        await settle()
        assert got == []
        assert stat(buses, HANDLERS, "rejected.signature") == len(HANDLERS)
        assert network.stats.uninterested == len(OTHERS)  # they would have dropped it unread


async def test_undecodable_unknown_and_request_frames_reach_every_subscriber() -> None:
    network = MemoryNetwork()
    everyone = HANDLERS + OTHERS
    async with swarm(network) as (transports, buses, got):
        await transports[ALICE].publish(TOPIC, b"\x92\xc4\x01x")  # not an envelope
        await transports[ALICE].publish(TOPIC, alice_frame(Wanted(n=4), 4, tag="test.nobody"))
        await transports[ALICE].publish(TOPIC, alice_frame(Unwanted(n=5), 5, kind=Kind.REQUEST))
        await settle()
        assert network.stats.uninterested == 0
        assert network.stats.by_topic[TOPIC] == 3 * len(everyone)
        assert stat(buses, everyone, "rejected.decode") >= len(everyone)
        assert got.count(5) <= len(OTHERS)  # a request is routed (or refused) as before

"""Trusted-local mode (``MemoryNetwork.connect(peer, trusted_local=True)``): trusted endpoints
exchange direct envelopes unsigned, and everything else is still checked in full — the
attacks below come from an untrusted endpoint on the same network, or from a trusted one
that claims to be someone else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from axl import Bus, Context, Identity, MemoryNetwork, MemoryTransport, Message, open_bus
from axl._wire import UNSIGNED

from .frames import frame_of

ALICE, BOB, CAROL, MALLORY = (Identity.from_seed(bytes([0x40 + i]) * 32) for i in range(4))


class Ask(Message, tag="test.trusted_ask"):
    n: int


class Answer(Message, tag="test.trusted_answer"):
    n: int


@asynccontextmanager
async def network_of(
    trusted: list[Identity], untrusted: list[Identity]
) -> AsyncIterator[tuple[dict[Identity, MemoryTransport], dict[Identity, Bus]]]:
    network = MemoryNetwork()
    async with AsyncExitStack() as stack:
        transports: dict[Identity, MemoryTransport] = {}
        buses: dict[Identity, Bus] = {}
        for identity in trusted + untrusted:
            transport = await stack.enter_async_context(
                network.connect(identity.peer_id, trusted_local=identity in trusted)
            )
            transports[identity] = transport
            buses[identity] = await stack.enter_async_context(open_bus(identity, transport))
        yield transports, buses


def unsigned_ask(sender: Identity, recipient: Identity, n: int) -> bytes:
    """An envelope that claims ``sender`` and carries no signature (anyone can build it)."""
    return frame_of(sender, Ask(n=n), n, recipient=recipient.peer_id, signed=False)


async def settle() -> None:
    for _ in range(20):
        await trio.sleep(0.005)


async def test_trusted_endpoints_exchange_unsigned_envelopes() -> None:
    async with network_of([ALICE, BOB], [MALLORY]) as (_, buses):
        signatures: list[bytes] = []

        async def on_ask(message: Ask, ctx: Context) -> Answer:
            signatures.append(ctx.envelope.signature)
            return Answer(n=message.n + 1)

        buses[BOB].on(Ask, on_ask)
        buses[MALLORY].on(Ask, on_ask)
        reply = await buses[ALICE].request(BOB.peer_id, Ask(n=1))
        assert isinstance(reply, Answer) and reply.n == 2
        # To an untrusted endpoint the same bus signs, and that bus verifies as usual.
        reply = await buses[ALICE].request(MALLORY.peer_id, Ask(n=5))
        assert isinstance(reply, Answer) and reply.n == 6
        assert signatures[0] == UNSIGNED and signatures[1] != UNSIGNED
        await buses[ALICE].send_many(BOB.peer_id, [Ask(n=n) for n in range(8)])
        await settle()
        assert signatures[2:] == [UNSIGNED] * 8
        await buses[ALICE].send_many(MALLORY.peer_id, [Ask(n=n) for n in range(8)])
        await settle()
        assert UNSIGNED not in signatures[10:] and len(signatures) == 18
        for bus in buses.values():
            assert not [key for key in bus.stats.snapshot() if key.startswith("rejected.")]


async def test_forgeries_from_an_untrusted_endpoint_are_rejected() -> None:
    async with network_of([ALICE, BOB], [MALLORY]) as (transports, buses):
        got: list[int] = []

        async def on_ask(message: Ask, ctx: Context) -> None:
            got.append(message.n)

        buses[BOB].on(Ask, on_ask)
        mallory = transports[MALLORY]
        # Unsigned, claiming to be trusted Alice; unsigned as itself; signed by itself but
        # claiming Alice.
        await mallory.send(BOB.peer_id, unsigned_ask(ALICE, BOB, 1))
        await mallory.send(BOB.peer_id, unsigned_ask(MALLORY, BOB, 2))
        forged = bytearray(unsigned_ask(ALICE, BOB, 3))
        await mallory.send(BOB.peer_id, bytes(forged[:-64]) + MALLORY.sign(b"anything"))
        await settle()
        assert got == []
        assert buses[BOB].stats["rejected.signature"] == 3
        # Mallory's own properly signed message still gets through.
        await buses[MALLORY].send(BOB.peer_id, Ask(n=4))
        await settle()
        assert got == [4]


async def test_a_trusted_endpoint_cannot_speak_for_another() -> None:
    async with network_of([ALICE, BOB, CAROL], []) as (transports, buses):
        got: list[int] = []

        async def on_ask(message: Ask, ctx: Context) -> None:
            got.append(message.n)

        buses[BOB].on(Ask, on_ask)
        # Carol is trusted, but the network vouches only that Carol handed the frame over.
        await transports[CAROL].send(BOB.peer_id, unsigned_ask(ALICE, BOB, 1))
        # The replay window still applies to trusted frames.
        frame = unsigned_ask(CAROL, BOB, 2)
        await transports[CAROL].send(BOB.peer_id, frame)
        await transports[CAROL].send(BOB.peer_id, frame)
        await settle()
        assert got == [2]
        assert buses[BOB].stats["rejected.signature"] == 1
        assert buses[BOB].stats["rejected.replay"] == 1


async def test_an_unsigned_frame_fails_on_an_untrusted_receiver() -> None:
    async with network_of([ALICE], [BOB]) as (transports, buses):
        got: list[int] = []

        async def on_ask(message: Ask, ctx: Context) -> None:
            got.append(message.n)

        buses[BOB].on(Ask, on_ask)
        assert not transports[ALICE].trusted_route(BOB.peer_id)
        await transports[ALICE].send(BOB.peer_id, unsigned_ask(ALICE, BOB, 1))
        await buses[ALICE].send(BOB.peer_id, Ask(n=2))  # the bus signs: Bob is not trusted
        await settle()
        assert got == [2]
        assert buses[BOB].stats["rejected.signature"] == 1

"""Traffic counting by message type, and the spammers' signature mangling."""

from __future__ import annotations

import trio

from agents.sim._netstats import CountingTransport, TrafficCounter, frame_type
from axl import Bus, Identity, MemoryNetwork, Message


class Hello(Message, tag="test.sim.hello"):
    n: int


async def test_counts_by_type_and_mangled_frames_are_rejected() -> None:
    network, counter = MemoryNetwork(), TrafficCounter()
    alice, bob, eve = (Identity.from_seed(bytes([i]) * 32) for i in (1, 2, 3))
    got: list[int] = []

    async def on_hello(message: Hello, ctx: object) -> None:
        got.append(message.n)

    async with trio.open_nursery() as nursery:
        buses = {}
        for ident, mangle in ((alice, False), (bob, False), (eve, True)):
            link = CountingTransport(network.connect(ident.peer_id), counter, mangle=mangle)
            bus = Bus(ident, link)
            bus.on(Hello, on_hello)
            await nursery.start(bus.run)
            buses[ident.peer_id] = bus
        await buses[alice.peer_id].send(bob.peer_id, Hello(n=1))
        await buses[eve.peer_id].send(bob.peer_id, Hello(n=2))  # signature broken on the way
        await buses[eve.peer_id].transport.send(bob.peer_id, b"\x00garbage")
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert got == [1]
    assert counter.snapshot() == {"test.sim.hello": 1, "invalid": 2}
    stats = buses[bob.peer_id].stats
    assert stats["rejected.signature"] == 1
    assert stats["rejected.decode"] == 1


def test_frame_type_of_garbage_is_invalid() -> None:
    assert frame_type(b"") == "invalid"
    assert frame_type(b"\x92\xc4\x01\x00\xc4\x00") == "invalid"

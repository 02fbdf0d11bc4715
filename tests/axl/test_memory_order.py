"""The memory network draws a topic frame's per-receiver loss and jitter in subscription
order, not in the order of a set of peer ids (which follows their hashes, and so the process's
hash seed): the same seed gives the same deliveries in every process."""

from __future__ import annotations

import random

import trio
import trio.testing

from axl import Identity, LinkProfile, MemoryNetwork

PEERS = [Identity.from_seed(bytes([0x70 + i]) * 32).peer_id for i in range(40)]


async def due_times(order: list[int]) -> list[float]:
    """Each subscriber's delay for one published frame, subscribers joining in ``order``."""
    network = MemoryNetwork(seed=5, default_link=LinkProfile(latency=0.0, jitter=1.0))
    sender = network.connect(Identity.from_seed(b"\xee" * 32).peer_id)
    transports = [network.connect(peer) for peer in PEERS]
    for index in order:
        await transports[index].subscribe("t")
    start = trio.current_time()
    await sender.publish("t", b"frame")
    due = {index: transports[index]._inbox._heap[0][0] - start for index in order}
    return [due[index] for index in order]


def test_receivers_draw_their_jitter_in_subscription_order() -> None:
    order = list(range(len(PEERS)))
    random.Random(1).shuffle(order)
    expected_draws = random.Random(5)
    expected = [expected_draws.uniform(0.0, 1.0) for _ in order]
    got = trio.run(due_times, order, clock=trio.testing.MockClock())
    assert got == expected
    assert trio.run(due_times, order[::-1], clock=trio.testing.MockClock()) == expected

"""Signed messages per second and latency through the in-memory bus, against the floor.

The floor, measured in the same run on the same payloads: msgpack-encode the message, build and
sign its envelope, verify the signature — everything a message costs with no bus at all. The
bus figures add the transport, the receive checks (size, decode, type, signature, freshness,
replay), payload validation and handler dispatch.

Request/response is measured signed (the default) and in trusted-local mode (both endpoints
attached with ``trusted_local=True``: no signing or verifying, every other check kept; see
``docs/wire.md``), against the goal of 1.5x uAgents' Bureau (5,652 rt/s measured on this
machine, JSON handed over in memory, no signatures). One-way messages are measured with
signatures verified on the event loop and on one and two worker threads, and with
``send_many`` (batches of 64 signed on a worker thread).

    python -m benchmarks.bus_throughput [--messages N] [--quick]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from axl import Bus, BusConfig, Context, Identity, MemoryNetwork, Message, open_bus

from ._report import line, now, percentile, sign_verify_seconds


class Tick(Message, tag="bench.tick"):
    seq: int
    data: bytes


class Tock(Message, tag="bench.tock"):
    seq: int


ALICE = Identity.from_seed(b"\x01" * 32)
BOB = Identity.from_seed(b"\x02" * 32)
BUREAU_RTS = 5652.0
"""uAgents' Bureau, one process, request/response (measured on the 2-core dev machine)."""


def payloads(count: int, size: int) -> list[Tick]:
    return [Tick(seq=i, data=os.urandom(size)) for i in range(count)]


def floor_rate(messages: list[Tick]) -> float:
    """Encode + sign + verify per message, no bus: messages per second."""
    payloads = (message.encode_payload() for message in messages)
    return len(messages) / sign_verify_seconds(ALICE, BOB.peer_id, Tick.axl_tag, payloads)


@asynccontextmanager
async def alice_and_bob(
    network: MemoryNetwork, *, trusted: bool = False, threads: int | None = None
) -> AsyncIterator[tuple[Bus, Bus]]:
    """Alice's and Bob's buses on ``network``, running for the ``async with``."""
    config = BusConfig(verify_threads=threads)
    async with (
        network.connect(ALICE.peer_id, trusted_local=trusted) as alice_t,
        network.connect(BOB.peer_id, trusted_local=trusted) as bob_t,
        open_bus(ALICE, alice_t, config=config) as alice,
        open_bus(BOB, bob_t, config=config) as bob,
    ):
        yield alice, bob


async def bus_rate(messages: list[Tick], threads: int = 0, many: int = 0) -> float:
    """One-way direct messages from Alice's bus to a handler on Bob's (``bus.send``, or
    ``bus.send_many`` in batches of ``many``): messages per second."""
    network = MemoryNetwork(queue_capacity=4096)
    received = 0
    all_in = trio.Event()

    async def on_tick(message: Tick, ctx: Context) -> None:
        nonlocal received
        received += 1
        if received == len(messages):
            all_in.set()

    async with alice_and_bob(network, threads=threads) as (alice, bob):
        bob.on(Tick, on_tick)
        start = now()
        if many:
            for index in range(0, len(messages), many):
                await alice.send_many(BOB.peer_id, messages[index : index + many])
        else:
            for message in messages:
                await alice.send(BOB.peer_id, message)
        await all_in.wait()
        return len(messages) / (now() - start)


async def round_trips(count: int, size: int, trusted: bool = False) -> tuple[float, list[float]]:
    """Request/response through the bus: round trips per second and latencies (seconds)."""
    network = MemoryNetwork()

    async def on_tick(message: Tick, ctx: Context) -> Tock:
        return Tock(seq=message.seq)

    latencies = []
    async with alice_and_bob(network, trusted=trusted) as (alice, bob):
        bob.on(Tick, on_tick)
        message = Tick(seq=0, data=os.urandom(size))
        begin = now()
        for _ in range(count):
            start = now()
            await alice.request(BOB.peer_id, message)
            latencies.append(now() - start)
        rate = count / (now() - begin)
    return rate, latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=200, help="payload bytes per message")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.repeats = 500, 1
    messages = payloads(args.messages, args.size)
    floor = max(floor_rate(messages) for _ in range(args.repeats))
    one_way = {
        threads: max(trio.run(bus_rate, messages, threads) for _ in range(args.repeats))
        for threads in (0, 1, 2)
    }
    many = max(trio.run(bus_rate, messages, 1, 64) for _ in range(args.repeats))
    count = max(100, args.messages // 5)
    signed_rts, latencies = max(
        (trio.run(round_trips, count, args.size) for _ in range(args.repeats)),
        key=lambda result: result[0],
    )
    trusted_rts, trusted_latencies = max(
        (trio.run(round_trips, count, args.size, True) for _ in range(args.repeats)),
        key=lambda result: result[0],
    )
    floor_rtt = 2 / floor  # a round trip signs and verifies twice
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(f"AXL in-memory bus, {args.messages} messages of {args.size} payload bytes")
    print(line("floor: encode + sign + verify (no bus)", floor, "msg/s"))
    for threads, rate in one_way.items():
        print(line(f"bus: one-way direct, {threads} verify threads", rate, "msg/s"))
    print(line("bus: one-way, send_many(64), 1 thread", many, "msg/s"))
    print(line("bus: request/response, signed", signed_rts, "rt/s"))
    print(line("bus: request/response, signed, p50", p50 * 1e6, "µs"))
    print(line("bus: request/response, signed, p99", p99 * 1e6, "µs"))
    print(line("bus: request/response, trusted-local", trusted_rts, "rt/s"))
    print(
        line(
            "bus: request/response, trusted-local, p50",
            percentile(trusted_latencies, 0.5) * 1e6,
            "µs",
        )
    )
    print(line("floor: round trip (2 x sign + verify)", floor_rtt * 1e6, "µs"))
    best = max(one_way.values())
    print(
        f"  ratio bus/floor throughput (best threads)    {best / floor:>12.2f}x  (target >= 0.80)"
    )
    print(f"  ratio floor/bus round trip                   {floor_rtt / p50:>12.2f}x")
    print(f"  ratio trusted-local/signed round trips       {trusted_rts / signed_rts:>12.2f}x")
    print(
        f"  ratio trusted-local/Bureau ({BUREAU_RTS:,.0f} rt/s)       "
        f"{trusted_rts / BUREAU_RTS:>12.2f}x  (goal >= 1.50)"
    )
    print(f"  ratio signed/Bureau                          {signed_rts / BUREAU_RTS:>12.2f}x")


if __name__ == "__main__":
    main()

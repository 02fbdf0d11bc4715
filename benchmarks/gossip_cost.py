"""CPU per delivered topic message with N libp2p hosts in one process, every host publishing.

    python -m benchmarks.gossip_cost [--hosts 8] [--seconds 20] [--rate 1.0] [--quick]

``--hosts`` transports with buses (TCP on 127.0.0.1, Noise, yamux, GossipSub), fully connected,
all subscribed to one topic; each publishes a signed AXL message ``--rate`` times per second
(staggered). Over the window it prints: deliveries (received / expected), publish→handler
p50/p99, CPU ms per delivered message (``time.process_time`` of the whole process, all its
threads, divided by the deliveries), and the pubsub RPCs written per published message and
published messages carried per RPC (messages forwarded in one RPC: what coalescing shares the
per-RPC cost over). The load average is printed with the figures: on a shared machine only
figures from the same run compare.

This is the in-process measurement behind docs/libp2p.md ("Topics: GossipSub"); the
multi-process swarm is ``benchmarks.swarm_processes``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from typing import Any

import trio

from axl import Context, Message

from ._report import interpreter, line, now, percentile
from .libp2p_transport import CONFIG, nodes

TOPIC = "bench.gossip.cost"


class Tick(Message, tag="bench.gossip_cost_tick"):
    sent_at: float
    data: bytes


class RpcCount:
    """RPCs written by every pubsub of this process, and the publish entries they carried."""

    rpcs = 0
    carrying = 0
    published = 0
    _installed = False

    @classmethod
    def install(cls) -> None:
        if cls._installed:
            return
        from axl import _libp2p_pubsub

        module: Any = _libp2p_pubsub
        original = module.coalesce

        def coalesce(rpcs: Any, max_size: int) -> Any:  # what every pubsub writer writes
            out = original(rpcs, max_size)
            cls.rpcs += len(out)
            cls.carrying += sum(bool(rpc.publish) for rpc in out)
            cls.published += sum(len(rpc.publish) for rpc in out)
            return out

        module.coalesce = coalesce
        cls._installed = True


async def measure(
    hosts: int,
    seconds: float,
    rate: float,
    size: int,
    degree: tuple[int, int, int] | None = None,
    choke: bool = True,
) -> dict[str, float]:
    RpcCount.install()
    config = replace(CONFIG, gossip_choke=choke)
    if degree is not None:
        config = replace(
            config,
            gossip_degree=degree[0],
            gossip_degree_low=degree[1],
            gossip_degree_high=degree[2],
        )
    async with nodes(hosts, config=config) as (transports, buses):
        latencies: list[float] = []

        async def on_tick(message: Tick, ctx: Context) -> None:
            latencies.append(now() - message.sent_at)

        for bus in buses:
            bus.on(Tick, on_tick)
            await bus.join(TOPIC)
        want = min(hosts - 1, 2)
        with trio.move_on_after(15):
            while any(
                len(t._pubsub.router.mesh.get(TOPIC, ())) < want
                for t in transports
                if t._pubsub is not None
            ):
                await trio.sleep(0.05)
        await trio.sleep(1.0)
        data = os.urandom(size)
        published = 0

        async def publisher(index: int) -> None:
            nonlocal published
            await trio.sleep(index / (hosts * rate))
            deadline = trio.current_time() + seconds
            while trio.current_time() < deadline:
                await buses[index].publish(TOPIC, Tick(sent_at=now(), data=data))
                published += 1
                await trio.sleep(1.0 / rate)

        latencies.clear()
        rpcs, carrying, carried = RpcCount.rpcs, RpcCount.carrying, RpcCount.published
        counted = ("gossip.messages_received", "gossip.chokes_sent", "gossip.choke_repairs")
        before = {name: sum(t.stats[name] for t in transports) for name in counted}
        load_before = os.getloadavg()[0]
        cpu, wall = time.process_time(), now()
        async with trio.open_nursery() as nursery:
            for index in range(hosts):
                nursery.start_soon(publisher, index)
        expected = published * (hosts - 1)
        with trio.move_on_after(10):
            while len(latencies) < expected:
                await trio.sleep(0.05)
        cpu, wall = time.process_time() - cpu, now() - wall
        rpcs, carrying = RpcCount.rpcs - rpcs, RpcCount.carrying - carrying
        carried = RpcCount.published - carried
        dropped = sum(t.stats["gossip.dropped_queue_full"] for t in transports)
        after = {name: sum(t.stats[name] for t in transports) - before[name] for name in counted}
        return {
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "published": published,
            "delivered": len(latencies),
            "expected": expected,
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "cpu_ms_per_delivered": 1e3 * cpu / max(1, len(latencies)),
            "cpu_share": cpu / wall,
            "rpcs_per_published": rpcs / max(1, published),
            "messages_per_rpc": carried / max(1, carrying),
            "dropped_queue_full": dropped,
            "copies_per_delivered": after["gossip.messages_received"] / max(1, len(latencies)),
            "chokes_sent": after["gossip.chokes_sent"],
            "choke_repairs": after["gossip.choke_repairs"],
        }


def report(hosts: int, rate: float, got: dict[str, float]) -> None:
    print(
        f"gossip cost: {hosts} hosts in one process, each publishing {rate:g} msg/s "
        f"(load average {got['load_before']:.1f} before, {got['load_after']:.1f} after)"
    )
    print(f"  interpreter {interpreter()}")
    share = 100 * got["delivered"] / max(1, got["expected"])
    print(line("delivered", share, "%") + f"  ({got['delivered']:,.0f} of {got['expected']:,.0f})")
    print(line("publish→handler p50", 1e3 * got["p50"], "ms"))
    print(line("publish→handler p99", 1e3 * got["p99"], "ms"))
    print(f"  {'CPU per delivered message':<44} {got['cpu_ms_per_delivered']:>12.3f} ms")
    print(line("CPU used / wall time", 100 * got["cpu_share"], "%"))
    print(f"  {'pubsub RPCs written per published message':<44} {got['rpcs_per_published']:>12.1f}")
    print(f"  {'published messages per RPC carrying any':<44} {got['messages_per_rpc']:>12.2f}")
    print(f"  {'RPCs dropped, outbound queue full':<44} {got['dropped_queue_full']:>12,.0f}")
    print(f"  {'copies received per delivered message':<44} {got['copies_per_delivered']:>12.2f}")
    print(f"  {'CHOKEs sent / tree repairs (window)':<44} {got['chokes_sent']:>6,.0f} / ", end="")
    print(f"{got['choke_repairs']:,.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=1.0, help="messages/s per host")
    parser.add_argument("--size", type=int, default=100, help="payload bytes per message")
    parser.add_argument(
        "--degree",
        type=lambda text: tuple(int(d) for d in text.split(",")),
        help="mesh degree D,D_low,D_high (default: the transport's)",
    )
    parser.add_argument(
        "--no-choke", action="store_true", help="flood every mesh link (no CHOKE; the A/B arm)"
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.hosts, args.seconds = 4, 3.0
    got = trio.run(
        measure, args.hosts, args.seconds, args.rate, args.size, args.degree, not args.no_choke
    )
    report(args.hosts, args.rate, got)


if __name__ == "__main__":
    main()

"""AXL over libp2p against raw py-libp2p streams, measured side by side in one run.

Both sides run two py-libp2p 0.8 hosts in this one process (TCP on 127.0.0.1, Noise, yamux):

* **raw**: a plain stream on ``/bench/raw/1.0.0``; the client writes a payload and the server
  echoes it back (round trips), or the client writes one payload per stream write and the
  server counts bytes (one-way, pipelined).
* **AXL**: a :class:`~axl.Bus` over :class:`~axl.Libp2pTransport` with a message carrying the
  same payload bytes, as a signed envelope: ``bus.request`` (round trips) and ``bus.send``
  (one-way, the transport batches queued frames into one stream write).
* **GossipSub**: one publisher and ``--subscribers`` nodes, all connected; publish-to-handler
  latency for AXL topic messages, and for raw libp2p pubsub on the same hosts as the anchor.

    python -m benchmarks.libp2p_transport [--quick] [--size 200] [--round-trips N] [--messages N]
                                          [--one-process]

The round trips and one-way runs are repeated with the server in a child process (one
process shares one GIL between client and server, which is not how users run it). Besides the
rates it prints frames per stream write, bytes on the wire per message (bytes the TCP sockets
carried: Noise, yamux and framing included) and CPU seconds per 1,000 messages on each side
(in one process, both sides together), and AXL one-way with signatures verified on the event
loop, on one worker thread and on two (``BusConfig.verify_threads``).

The plumbing (nodes, measuring) is in ``benchmarks._libp2p_bench``, the two-process variant in
``benchmarks._libp2p_two``.
"""

from __future__ import annotations

import argparse
import math
import os
import struct
from typing import Any

import trio

from axl import BusConfig, Context

from ._libp2p_bench import (
    BATCH,
    RAW_PROTOCOL,
    Blob,
    Phase,
    Stamp,
    Wire,
    read_exactly,
)
from ._libp2p_bench import CONFIG as CONFIG  # re-exported: benchmarks.gossip_cost uses it
from ._libp2p_bench import nodes as nodes  # re-exported: benchmarks.gossip_cost uses it
from ._libp2p_two import serve_two_process, two_process
from ._report import line, now, percentile

# -- raw py-libp2p ---------------------------------------------------------------------------


async def raw(size: int, round_trips: int, messages: int) -> tuple[Phase, Phase]:
    """Raw stream round trips and one-way pipelined messages, one process."""
    from libp2p.custom_types import TProtocol

    async with nodes(2) as (transports, _):
        client, server = transports
        assert client._host is not None and server._host is not None
        one_way_done = trio.Event()
        expected = size * messages

        async def echo(stream: Any) -> None:
            mode = await read_exactly(stream, 1)
            if mode == b"E":
                while True:
                    await stream.write(await read_exactly(stream, size))
            else:
                got = 0
                while got < expected:
                    got += len(await stream.read(1 << 16))
                one_way_done.set()

        server._host.set_stream_handler(TProtocol(RAW_PROTOCOL), echo)
        from libp2p.peer.id import ID

        server_id = ID(server.local_peer.raw)
        payload = os.urandom(size)
        stream = await client._host.new_stream(server_id, [TProtocol(RAW_PROTOCOL)])
        await stream.write(b"E")
        one_way = await client._host.new_stream(server_id, [TProtocol(RAW_PROTOCOL)])
        await one_way.write(b"O")
        with Phase() as rt:
            for _ in range(round_trips):
                start = now()
                await stream.write(payload)
                await read_exactly(stream, size)
                rt.latencies.append(now() - start)
        rt.messages = round_trips
        with Phase() as ow:
            for _ in range(messages):
                await one_way.write(payload)
            await one_way_done.wait()
        ow.messages = messages
        return rt, ow


# -- AXL over libp2p -------------------------------------------------------------------------


async def axl(
    size: int, round_trips: int, messages: int, threads: int | None, many: bool = False
) -> tuple[Phase, Phase, Phase | None]:
    """AXL request/response and one-way messages (``bus.send``; with ``many`` also
    ``bus.send_many`` in batches of ``BATCH``), one process; ``threads``: the buses'
    ``verify_threads``."""
    async with nodes(2, BusConfig(verify_threads=threads)) as (transports, (client, server)):
        received = 0
        all_in = trio.Event()

        async def on_blob(message: Blob, ctx: Context) -> Blob | None:
            nonlocal received
            if ctx.is_request:
                return message
            received += 1
            if received == messages:
                all_in.set()
            return None

        server.on(Blob, on_blob)
        message = Blob(data=os.urandom(size))
        await client.request(server.peer_id, message)  # open the stream first
        with Phase(transports[0]) as rt:
            for _ in range(round_trips):
                start = now()
                await client.request(server.peer_id, message)
                rt.latencies.append(now() - start)
        rt.messages = round_trips
        with Phase(transports[0]) as ow:
            for _ in range(messages):
                await client.send(server.peer_id, message)
            await all_in.wait()
        ow.messages = messages
        if not many:
            return rt, ow, None
        received, all_in = 0, trio.Event()
        with Phase(transports[0]) as ow_many:
            for _ in range(messages // BATCH):
                await client.send_many(server.peer_id, [message] * BATCH)
            await client.send_many(server.peer_id, [message] * (messages % BATCH))
            await all_in.wait()
        ow_many.messages = messages
        return rt, ow, ow_many


# -- GossipSub latency -----------------------------------------------------------------------


async def gossip(
    subscribers: int, size: int, rounds: int, interval: float
) -> tuple[list[float], list[float]]:
    """Publish-to-delivery latencies (s) over GossipSub: (AXL topic messages, raw pubsub)."""
    async with nodes(subscribers + 1) as (transports, buses):
        publisher, audience = buses[0], buses[1:]
        axl_latencies: list[float] = []
        raw_latencies: list[float] = []

        async def on_stamp(message: Stamp, ctx: Context) -> None:
            axl_latencies.append(now() - message.sent_at)

        for bus in audience:
            bus.on(Stamp, on_stamp)
            await bus.join("bench")
        raw_subs = []
        for transport in transports[1:]:
            assert transport._pubsub is not None
            raw_subs.append(await transport._pubsub.subscribe("bench-raw"))
        await publisher.join("bench")
        assert transports[0]._pubsub is not None
        pubsub = transports[0]._pubsub
        await pubsub.subscribe("bench-raw")
        mesh = pubsub.router.mesh
        want = min(subscribers, CONFIG.gossip_degree)
        with trio.move_on_after(10):
            while len(mesh.get("bench", ())) < want or len(mesh.get("bench-raw", ())) < want:
                await trio.sleep(0.05)
        await trio.sleep(0.5)

        async def drain(subscription: Any) -> None:
            while True:
                message = await subscription.get()
                (sent_at,) = struct.unpack("!d", message.data[:8])
                raw_latencies.append(now() - sent_at)

        data = os.urandom(size)
        async with trio.open_nursery() as nursery:
            for subscription in raw_subs:
                nursery.start_soon(drain, subscription)
            for _ in range(rounds):  # paced: latency at a sustainable rate, not queueing
                await publisher.publish("bench", Stamp(sent_at=now(), data=data))
                await trio.sleep(interval)
                await pubsub.publish("bench-raw", struct.pack("!d", now()) + data)
                await trio.sleep(interval)
            with trio.move_on_after(10):
                while (
                    len(axl_latencies) < rounds * subscribers
                    or len(raw_latencies) < rounds * subscribers
                ):
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        return axl_latencies, raw_latencies


# -- report ----------------------------------------------------------------------------------

RATIO = "  {:<44} {:>12.2f}x  {}"


def report(title: str, phases: dict[str, Phase], two: bool) -> None:
    """Rates, frames per write, wire bytes and CPU per message, and the ratios with goals."""
    raw_rt, axl_rt = phases["raw rt"], phases["AXL rt"]
    raw_ow, axl_ow = phases["raw one-way"], phases["AXL one-way"]
    print(title)
    print(line("raw stream: round trips", raw_rt.rts, "rt/s"))
    print(line("raw stream: round trip p50", percentile(raw_rt.latencies, 0.5) * 1e6, "µs"))
    print(line("AXL request/response: round trips", axl_rt.rts, "rt/s"))
    print(
        line("AXL request/response: round trip p50", percentile(axl_rt.latencies, 0.5) * 1e6, "µs")
    )
    print(
        line("AXL request/response: round trip p99", percentile(axl_rt.latencies, 0.99) * 1e6, "µs")
    )
    print(line("raw stream: one-way, one write per message", raw_ow.rate, "msg/s"))
    cpu_raw = raw_ow.per_message(raw_ow.cpu_here + raw_ow.cpu_server) * 1e6
    print(line("  CPU per 1,000, all sides and threads", cpu_raw, "ms"))
    for name, phase in phases.items():
        if name.startswith("AXL one-way,"):
            print(line(f"{name}: batched", phase.rate, "msg/s"))
            loops = [("process", phase.cpu_loop, phase.cpu_here)]
            if two:
                loops = [
                    ("client", phase.cpu_loop, phase.cpu_here),
                    ("server", phase.cpu_server_loop, phase.cpu_server),
                ]
            for side, loop, cpu in loops:
                label = f"  CPU per 1,000 ({side}): event loop / all"
                print(f"  {label:<44} {phase.per_message(loop) * 1e6:>7,.0f} / ", end="")
                print(f"{phase.per_message(cpu) * 1e6:,.0f} ms")
    for name, phase in (("AXL round trips", axl_rt), ("AXL one-way", axl_ow)):
        if phase.writes:
            print(line(f"{name}: frames per stream write", phase.frames / phase.writes, ""))
    print(line("wire bytes per round trip: raw", raw_rt.per_message(raw_rt.wire_bytes), "B"))
    print(line("wire bytes per round trip: AXL", axl_rt.per_message(axl_rt.wire_bytes), "B"))
    print(line("wire bytes per one-way message: raw", raw_ow.per_message(raw_ow.wire_bytes), "B"))
    print(line("wire bytes per one-way message: AXL", axl_ow.per_message(axl_ow.wire_bytes), "B"))
    sides = ("client", "server") if two else ("both sides",)
    for name, phase in (
        ("raw rt", raw_rt),
        ("AXL rt", axl_rt),
        ("raw one-way", raw_ow),
        ("AXL one-way", axl_ow),
    ):
        cpus = (phase.cpu_here, phase.cpu_server) if two else (phase.cpu_here,)
        for side, cpu in zip(sides, cpus, strict=True):
            print(line(f"CPU per 1,000 {name} ({side})", phase.per_message(cpu) * 1e6, "ms"))
    print(RATIO.format("ratio AXL/raw round trips/s", axl_rt.rts / raw_rt.rts, "(goal >= 0.90)"))
    p50s = percentile(raw_rt.latencies, 0.5) / percentile(axl_rt.latencies, 0.5)
    print(RATIO.format("ratio AXL/raw round trips, by p50", p50s, "(less noisy)"))
    best = max(p.rate for n, p in phases.items() if n.startswith("AXL one-way,"))
    per_send = max(
        p.rate for n, p in phases.items() if n.startswith("AXL one-way,") and "many" not in n
    )
    print(RATIO.format("ratio AXL/raw one-way msgs/s, bus.send", per_send / raw_ow.rate, ""))
    print(RATIO.format("ratio AXL/raw one-way msgs/s (best)", best / raw_ow.rate, "(goal >= 5)"))


async def run(args: argparse.Namespace) -> None:
    Wire.install()
    if args.no_fast_path:
        from axl import _libp2p_links

        _libp2p_links.FAST_PATH_GAP = math.inf
    raw_rt, raw_ow = await raw(args.size, args.round_trips, args.messages)
    phases = {"raw rt": raw_rt, "raw one-way": raw_ow}
    for index, threads in enumerate(args.threads):
        axl_rt, axl_ow, axl_many = await axl(
            args.size, args.round_trips, args.messages, threads, many=index == 0
        )
        if "AXL rt" not in phases:
            phases["AXL rt"], phases["AXL one-way"] = axl_rt, axl_ow
        phases[f"AXL one-way, {threads} verify threads"] = axl_ow
        if axl_many is not None:
            phases[f"AXL one-way, send_many({BATCH}), {threads} verify threads"] = axl_many
    report(
        f"libp2p transport, py-libp2p hosts in one process (TCP 127.0.0.1, Noise, yamux), "
        f"{args.size}-byte payloads; CPU: both sides share the process",
        phases,
        two=False,
    )
    if args.gossip_rounds:
        axl_gossip, raw_gossip = await gossip(
            args.subscribers, args.size, args.gossip_rounds, args.gossip_interval
        )
        expected = args.gossip_rounds * args.subscribers
        for label, samples in (("AXL topic", axl_gossip), ("raw pubsub", raw_gossip)):
            for q in (0.5, 0.99):
                print(
                    line(
                        f"{label} to {args.subscribers} nodes: latency p{round(q * 100)}",
                        1e6 * percentile(samples, q),
                        "µs",
                    )
                )
            print(f"  {label + ' deliveries':<44} {len(samples):>12,} of {expected}")
        print(
            f"  ratio AXL/raw gossip latency p50             "
            f"{percentile(axl_gossip, 0.5) / percentile(raw_gossip, 0.5):>12.2f}x"
        )
    if args.two_process:
        two: dict[str, Phase] = {}
        for index, threads in enumerate(args.threads):
            got = await two_process(
                args.size, args.round_trips, args.messages, threads, with_raw=index == 0
            )
            if index == 0:
                many = got.pop("AXL one-way many")
                two.update(got)
                two[f"AXL one-way, send_many({BATCH}), server {threads} verify thr."] = many
            two[f"AXL one-way, server {threads} verify threads"] = got["AXL one-way"]
        report(
            "two processes (client here, server in a child process), same payloads:",
            two,
            two=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=200, help="payload bytes per message")
    parser.add_argument("--round-trips", type=int, default=3000)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--gossip-rounds", type=int, default=30)
    parser.add_argument(
        "--gossip-interval", type=float, default=0.25, help="seconds between two publications"
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument(
        "--one-process",
        dest="two_process",
        action="store_false",
        help="skip the two-process variant (client and server in separate processes)",
    )
    parser.add_argument(
        "--threads",
        type=lambda text: [int(t) for t in text.split(",")],
        default=[1, 0, 2],
        help="verify_threads values to run AXL one-way with (the first for round trips)",
    )
    parser.add_argument(
        "--no-fast-path", action="store_true", help="queue every frame (for comparison)"
    )
    parser.add_argument("--serve", type=int, metavar="SIZE", help=argparse.SUPPRESS)
    parser.add_argument("--serve-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        trio.run(serve_two_process, args.serve, args.serve_threads)
        return
    if args.quick:
        args.round_trips, args.messages, args.subscribers, args.gossip_rounds = 200, 500, 3, 5
        args.threads = args.threads[:1]
    trio.run(run, args)


if __name__ == "__main__":
    main()

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
process shares one GIL between client and server, which is not how users run it).
"""

from __future__ import annotations

import argparse
import os
import struct
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from axl import Bus, Context, Identity, Libp2pConfig, Libp2pTransport, Message, open_bus

from ._report import line, now, percentile

RAW_PROTOCOL = "/bench/raw/1.0.0"
# Nodes are connected explicitly, so the peer-exchange topic's start-up chatter is left out.
CONFIG = Libp2pConfig(send_queue=4096, inbox_capacity=8192, peer_exchange=False)


class Blob(Message, tag="bench.libp2p_blob"):
    data: bytes


class Stamp(Message, tag="bench.libp2p_stamp"):
    sent_at: float
    data: bytes


def identity(index: int) -> Identity:
    return Identity.from_seed(bytes([0x90 + index]) * 32)


@asynccontextmanager
async def nodes(count: int) -> AsyncIterator[tuple[list[Libp2pTransport], list[Bus]]]:
    """``count`` transports with buses, fully connected."""
    async with AsyncExitStack() as stack:
        transports = [
            await stack.enter_async_context(Libp2pTransport.open(identity(i), config=CONFIG))
            for i in range(count)
        ]
        async with trio.open_nursery() as nursery:
            for i, node in enumerate(transports):
                for other in transports[i + 1 :]:
                    nursery.start_soon(node.connect, other.listen_addrs[0])
        buses = [
            await stack.enter_async_context(open_bus(identity(i), transport))
            for i, transport in enumerate(transports)
        ]
        yield transports, buses


# -- raw py-libp2p ---------------------------------------------------------------------------


async def read_exactly(stream: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.read(size - len(data))
        if not chunk:
            raise EOFError("stream closed")
        data += chunk
    return data


async def raw(size: int, round_trips: int, messages: int) -> tuple[list[float], float]:
    """Raw stream round-trip latencies (s) and one-way pipelined messages per second."""
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
        latencies = []
        for _ in range(round_trips):
            start = now()
            await stream.write(payload)
            await read_exactly(stream, size)
            latencies.append(now() - start)
        start = now()
        for _ in range(messages):
            await one_way.write(payload)
        await one_way_done.wait()
        return latencies, messages / (now() - start)


# -- AXL over libp2p -------------------------------------------------------------------------


async def axl(size: int, round_trips: int, messages: int) -> tuple[list[float], float]:
    """AXL request/response latencies (s) and one-way messages per second."""
    async with nodes(2) as (_, (client, server)):
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
        latencies = []
        for _ in range(round_trips):
            start = now()
            await client.request(server.peer_id, message)
            latencies.append(now() - start)

        start = now()
        for _ in range(messages):
            await client.send(server.peer_id, message)
        await all_in.wait()
        return latencies, messages / (now() - start)


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
        mesh = pubsub.router.mesh  # type: ignore[attr-defined]
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


# -- two processes ---------------------------------------------------------------------------


async def serve_two_process(size: int) -> None:
    """The server side in its own process: AXL echo (``Blob``) and a raw echo/count stream
    handler; prints its address and runs until killed."""
    from libp2p.custom_types import TProtocol

    me = identity(1)
    async with (
        Libp2pTransport.open(me, config=CONFIG) as transport,
        open_bus(me, transport) as bus,
    ):

        async def on_blob(message: Blob, ctx: Context) -> Blob | None:
            return message if ctx.is_request else None

        bus.on(Blob, on_blob)

        async def echo(stream: Any) -> None:
            mode = await read_exactly(stream, 1)
            if mode == b"E":
                while True:
                    await stream.write(await read_exactly(stream, size))
            else:  # one-way: an 8-byte count of payloads, the payloads, then a 1-byte ack
                (count,) = struct.unpack("!Q", await read_exactly(stream, 8))
                got = 0
                while got < count * size:
                    got += len(await stream.read(1 << 16))
                await stream.write(b"A")

        assert transport._host is not None
        transport._host.set_stream_handler(TProtocol(RAW_PROTOCOL), echo)
        print("ADDR", transport.listen_addrs[0], flush=True)
        await trio.sleep_forever()


async def two_process(size: int, round_trips: int, messages: int) -> dict[str, float]:
    """Client here, server in a child process: raw and AXL round trips and one-way rates."""
    import subprocess
    import sys

    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "benchmarks.libp2p_transport", "--serve", str(size)]
    server = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    results: dict[str, float] = {}
    try:
        assert server.stdout is not None
        text = b""
        with trio.fail_after(60):
            while b"\n" not in text:
                text += await server.stdout.receive_some()
        addr = text.decode().split("\n")[0].removeprefix("ADDR ")
        me = identity(0)
        async with (
            Libp2pTransport.open(me, config=CONFIG) as transport,
            open_bus(me, transport) as bus,
        ):
            peer = await transport.connect(addr)
            assert transport._host is not None
            host, server_id = transport._host, ID(peer.raw)
            payload = os.urandom(size)
            stream = await host.new_stream(server_id, [TProtocol(RAW_PROTOCOL)])
            await stream.write(b"E")
            raw_rtt = []
            for _ in range(round_trips):
                start = now()
                await stream.write(payload)
                await read_exactly(stream, size)
                raw_rtt.append(now() - start)
            one_way = await host.new_stream(server_id, [TProtocol(RAW_PROTOCOL)])
            await one_way.write(b"O" + struct.pack("!Q", messages))
            start = now()
            for _ in range(messages):
                await one_way.write(payload)
            await read_exactly(one_way, 1)
            results["raw one-way msg/s"] = messages / (now() - start)

            message = Blob(data=payload)
            await bus.request(peer, message)  # open the link first
            axl_rtt = []
            for _ in range(round_trips):
                start = now()
                await bus.request(peer, message)
                axl_rtt.append(now() - start)
            start = now()
            for _ in range(messages):
                await bus.send(peer, message)
            await bus.request(peer, message, timeout=60)  # in order behind every send
            results["AXL one-way msg/s"] = messages / (now() - start)
            results["raw rt/s"] = len(raw_rtt) / sum(raw_rtt)
            results["AXL rt/s"] = len(axl_rtt) / sum(axl_rtt)
            results["raw p50"] = percentile(raw_rtt, 0.5)
            results["AXL p50"] = percentile(axl_rtt, 0.5)
    finally:
        server.kill()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await server.wait()
    return results


# -- report ----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    raw_rtt, raw_rate = await raw(args.size, args.round_trips, args.messages)
    axl_rtt, axl_rate = await axl(args.size, args.round_trips, args.messages)
    axl_gossip, raw_gossip = await gossip(
        args.subscribers, args.size, args.gossip_rounds, args.gossip_interval
    )

    raw_p50, axl_p50 = percentile(raw_rtt, 0.5), percentile(axl_rtt, 0.5)
    raw_rts, axl_rts = len(raw_rtt) / sum(raw_rtt), len(axl_rtt) / sum(axl_rtt)
    print(
        f"libp2p transport, py-libp2p hosts in one process (TCP 127.0.0.1, Noise, yamux), "
        f"{args.size}-byte payloads"
    )
    print(line("raw stream: round trips", raw_rts, "rt/s"))
    print(line("raw stream: round trip p50", raw_p50 * 1e6, "µs"))
    print(line("raw stream: round trip p99", percentile(raw_rtt, 0.99) * 1e6, "µs"))
    print(line("AXL request/response: round trips", axl_rts, "rt/s"))
    print(line("AXL request/response: round trip p50", axl_p50 * 1e6, "µs"))
    print(line("AXL request/response: round trip p99", percentile(axl_rtt, 0.99) * 1e6, "µs"))
    print(line("raw stream: one-way, one write per message", raw_rate, "msg/s"))
    print(line("AXL send: one-way, batched writes", axl_rate, "msg/s"))
    expected = args.gossip_rounds * args.subscribers
    for label, samples in (("AXL topic", axl_gossip), ("raw pubsub", raw_gossip)):
        print(
            line(
                f"{label} to {args.subscribers} nodes: latency p50",
                1e6 * percentile(samples, 0.5),
                "µs",
            )
        )
        print(
            line(
                f"{label} to {args.subscribers} nodes: latency p99",
                1e6 * percentile(samples, 0.99),
                "µs",
            )
        )
        print(f"  {label + ' deliveries':<44} {len(samples):>12,} of {expected}")
    ratio = "  {:<44} {:>12.2f}x  {}"
    print(ratio.format("ratio AXL/raw round trips/s", axl_rts / raw_rts, "(target >= 0.90)"))
    print(ratio.format("ratio AXL/raw one-way msgs/s", axl_rate / raw_rate, "(target >= 5)"))
    print(
        f"  ratio AXL/raw gossip latency p50             "
        f"{percentile(axl_gossip, 0.5) / percentile(raw_gossip, 0.5):>12.2f}x"
    )
    if args.two_process:
        two = await two_process(args.size, args.round_trips, args.messages)
        print("two processes (client here, server in a child process), same payloads:")
        print(line("2 processes: raw stream round trips", two["raw rt/s"], "rt/s"))
        print(line("2 processes: raw stream round trip p50", two["raw p50"] * 1e6, "µs"))
        print(line("2 processes: AXL round trips", two["AXL rt/s"], "rt/s"))
        print(line("2 processes: AXL round trip p50", two["AXL p50"] * 1e6, "µs"))
        print(
            line("2 processes: raw one-way, one write per msg", two["raw one-way msg/s"], "msg/s")
        )
        print(line("2 processes: AXL one-way, batched", two["AXL one-way msg/s"], "msg/s"))
        print(
            ratio.format(
                "2 processes: ratio AXL/raw round trips/s",
                two["AXL rt/s"] / two["raw rt/s"],
                "(target >= 0.90)",
            )
        )
        print(
            ratio.format(
                "2 processes: ratio AXL/raw one-way msgs/s",
                two["AXL one-way msg/s"] / two["raw one-way msg/s"],
                "(target >= 5)",
            )
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
    parser.add_argument("--serve", type=int, metavar="SIZE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        trio.run(serve_two_process, args.serve)
        return
    if args.quick:
        args.round_trips, args.messages, args.subscribers, args.gossip_rounds = 200, 500, 3, 5
    trio.run(run, args)


if __name__ == "__main__":
    main()

"""CPU per libp2p stream opened, served and closed: the transport's way against py-libp2p's.

    python -m benchmarks.stream_setup [--streams 400] [--rounds 3] [--quick]

Two transports in one process (TCP on 127.0.0.1, Noise, yamux). One opens a stream to the
other on the peer-list protocol, the other writes its peer list and closes, the first reads it
to the end and closes: what every DHT query, link and peer-list request costs both ends, a
share of every node's fixed cost in ``benchmarks.swarm_processes``. Rounds alternate between
the transport as it runs (stream events skipped while no notifee handles them:
``axl._libp2p_swarm.quiet_stream_events``) and the anchor, py-libp2p's fan-out of every
stream opened and closed to every notifee (a nursery and a task per notifee). Printed: CPU µs
per stream, both ends together (``time.process_time``, the median round), and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_config import PEER_LIST_PROTOCOL
from axl._libp2p_swarm import quiet_stream_events

from ._report import line

CONFIG = Libp2pConfig(peer_exchange=True)


def set_quiet(transport: Libp2pTransport, quiet: bool) -> None:
    """Skip (``quiet``) or fan out the transport's stream events, as py-libp2p does."""
    assert transport._host is not None
    network: Any = transport._host.get_network()
    network.__dict__.pop("_notify", None)  # py-libp2p's own fan-out again
    if quiet:
        quiet_stream_events(network)


async def one_stream(host: Any, peer: Any, protocol: Any) -> None:
    stream = await host.new_stream(peer, [protocol])
    try:
        while await stream.read(1 << 16):
            pass
    except Exception:  # py-libp2p raises at the end of a stream the other side closed
        pass
    await stream.close()


async def measure(streams: int, rounds: int) -> dict[str, list[float]]:
    """CPU seconds per stream, per round, for ``quiet`` and ``fan-out``."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    results: dict[str, list[float]] = {"quiet": [], "fan-out": []}
    async with (
        Libp2pTransport.open(Identity.from_seed(b"\x31" * 32), config=CONFIG) as client,
        Libp2pTransport.open(Identity.from_seed(b"\x32" * 32), config=CONFIG) as server,
    ):
        await client.connect(server.listen_addrs[0])
        assert client._host is not None
        host, peer = client._host, ID(server.local_peer.raw)
        protocol = TProtocol(PEER_LIST_PROTOCOL)
        for _ in range(max(10, streams // 10)):  # warm up: caches, code paths
            await one_stream(host, peer, protocol)
        for _ in range(rounds):
            for mode in results:
                for transport in (client, server):
                    set_quiet(transport, mode == "quiet")
                began = time.process_time()
                for _ in range(streams):
                    await one_stream(host, peer, protocol)
                results[mode].append((time.process_time() - began) / streams)
        for transport in (client, server):
            set_quiet(transport, True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=400, help="streams per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each way")
    parser.add_argument("--quick", action="store_true", help="a few streams, for smoke tests")
    args = parser.parse_args(argv)
    streams, rounds = (20, 1) if args.quick else (args.streams, args.rounds)
    results = trio.run(measure, streams, rounds)
    quiet = statistics.median(results["quiet"]) * 1e6
    fan_out = statistics.median(results["fan-out"]) * 1e6
    print(f"libp2p stream setup, {streams} streams x {rounds} rounds each way (one process)")
    print(line("CPU per stream, stream events skipped", quiet, "µs"))
    print(line("CPU per stream, py-libp2p's fan-out (anchor)", fan_out, "µs"))
    print(f"  {'ratio skipped / fan-out':<44} {quiet / fan_out:>12.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Adversarial soak: honest peers keep making requests to a node while attackers hit it.

The node runs in a child process (so its RSS is its own), a :class:`~axl.Bus` over a
:class:`~axl.Libp2pTransport` with the budgets below, answering ``Ping`` with ``Pong``. This
process runs the honest clients and the attackers, all on 127.0.0.1:

* **churn**: fresh identities connecting and disconnecting, over and over;
* **forward-dated**: a valid signer whose clock runs 29 s fast floods signed messages (under the
  old replay window they raised a floor over every honest request);
* **half-sent**: streams that announce a big frame, send part of it and stall;
* **flood**: well-framed junk as fast as the attacker can write it;
* **plaintext**: dials that offer only ``/plaintext/2.0.0`` and claim an honest peer's id.

First the honest clients run alone (the anchor), then with every attacker for ``--seconds``.
Printed: honest requests served and failed in each phase, the success rate under attack
(target >= 99 %), round-trip p50 and the ratio to the anchor, the node's RSS (before, peak,
after) against its buffer budget, and the node's refusal counters.

Afterwards ``--lifetime-connections`` (default 2,000) connections are opened and closed in
turn, 40 clients at a time, and the served/refused counts are printed.

    python -m benchmarks.adversarial_soak [--quick] [--seconds 30] [--honest 3]
                                          [--lifetime-connections 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.lowlevel

from axl import (
    AxlError,
    BusConfig,
    Context,
    Identity,
    Libp2pConfig,
    Libp2pTransport,
    Message,
    open_bus,
)
from axl._libp2p import PROTOCOL_ID
from axl._libp2p_framing import encode_batch

from ._report import line, percentile

NODE = Identity.from_seed(b"\xa0" * 32)
HONEST_SEED = 0xB0
LOOPBACK = "/ip4/127.0.0.1/tcp/0"
NODE_CONFIG = Libp2pConfig(
    peer_exchange=False,
    max_connections=128,
    max_connections_per_ip=96,  # everyone here shares 127.0.0.1
    max_buffered_bytes=8 << 20,
    partial_frame_timeout=2.0,
    rate_limit=2_000.0,
    rate_burst=2_000,
)
NODE_BUS = BusConfig(replay_capacity=5_000)
CLIENT_CONFIG = Libp2pConfig(peer_exchange=False, dial_timeout=5.0)


class Ping(Message, tag="bench.soak_ping"):
    n: int


class Pong(Message, tag="bench.soak_pong"):
    n: int


# -- the node (child process) -------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) * 1024
    return 0


async def serve() -> None:
    """Run the node; print its address, then a stats line (JSON) every 0.25 s."""
    async with (
        Libp2pTransport.open(NODE, config=NODE_CONFIG) as transport,
        open_bus(NODE, transport, config=NODE_BUS) as bus,
    ):

        async def on_ping(message: Ping, ctx: Context) -> Pong:
            return Pong(n=message.n)

        bus.on(Ping, on_ping)
        print("ADDR", transport.listen_addrs[0], flush=True)
        while True:
            stats = {
                "rss": rss_bytes(),
                "buffered": transport._budgets.buffered,
                "connections": transport._budgets.connections,
                "transport": transport.stats.snapshot(),
                "bus": bus.stats.snapshot(),
            }
            print("STATS", json.dumps(stats), flush=True)
            await trio.sleep(0.25)


# -- honest clients ------------------------------------------------------------------------


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    rtts: list[float] = field(default_factory=list)


async def honest(index: int, addr: str, tallies: dict[str, Tally], phase: list[str]) -> None:
    """Request, request, request; results go to the tally of the phase they started in."""
    me = Identity.from_seed(bytes([HONEST_SEED + index]) * 32)
    async with (
        Libp2pTransport.open(me, config=CLIENT_CONFIG, bootstrap=[addr]) as transport,
        open_bus(me, transport) as bus,
    ):
        assert await bus.request(NODE.peer_id, Ping(n=0), timeout=30) == Pong(n=0)  # warm up
        tallies["ready"].ok += 1
        n = 0
        while True:
            n += 1
            tally = tallies[phase[0]]
            start = time.perf_counter()
            try:
                reply = await bus.request(NODE.peer_id, Ping(n=n), timeout=10)
                if reply != Pong(n=n):
                    raise AssertionError("wrong reply")
            except (AxlError, AssertionError) as exc:
                tally.failed += 1
                name = type(exc).__name__
                tally.errors[name] = tally.errors.get(name, 0) + 1
                await trio.sleep(0.05)
                continue
            tally.ok += 1
            tally.rtts.append(time.perf_counter() - start)
            await trio.sleep(0.01)


async def honest_clients(addr: str, count: int) -> None:
    """The honest side (its own process, so attackers do not slow its event loop): prints
    READY once every client got a reply; stdin lines switch the phase (``attack``, ``end``);
    at ``end`` it prints each phase's tally as JSON."""
    tallies = {name: Tally() for name in ("ready", "anchor", "attack", "end")}
    phase = ["anchor"]
    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(honest, index, addr, tallies, phase)
        while tallies["ready"].ok < count:
            await trio.sleep(0.05)
        print("READY", flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        pending = b""
        while phase[0] != "end":
            chunk = await stdin.receive_some()
            if not chunk:
                break
            pending += chunk
            *rows, pending = pending.split(b"\n")
            for row in rows:
                if row.strip():
                    phase[0] = row.decode().strip()
        result = {
            name: {"ok": t.ok, "failed": t.failed, "errors": t.errors, "rtts": t.rtts}
            for name, t in tallies.items()
        }
        print("TALLY", json.dumps(result), flush=True)
        nursery.cancel_scope.cancel()


# -- attackers -----------------------------------------------------------------------------


def raw_host(*, plaintext_as: Identity | None = None) -> Any:
    """A bare py-libp2p host (no listen address); ``plaintext_as``: plaintext only, claiming
    that identity's peer id with nothing but its public key."""
    from libp2p import new_host
    from libp2p.crypto.ed25519 import Ed25519PrivateKey, create_new_key_pair
    from libp2p.crypto.keys import KeyPair
    from libp2p.custom_types import TProtocol
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

    own = create_new_key_pair()
    if plaintext_as is None:
        return new_host(key_pair=own, listen_addrs=[])
    claimed = Ed25519PrivateKey.from_bytes(plaintext_as.private_seed()).get_public_key()

    class Claim(type(own.private_key)):  # type: ignore[misc]
        def get_public_key(self) -> Any:
            return claimed

    claim = Claim.from_bytes(own.private_key.to_bytes())
    insecure = InsecureTransport(KeyPair(claim, claimed))
    return new_host(
        key_pair=own, sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): insecure}, listen_addrs=[]
    )


def node_info(addr: str) -> Any:
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    return info_from_p2p_addr(multiaddr.Multiaddr(addr))


async def churn(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """Fresh identities connect, open a stream, disconnect."""
    from libp2p.custom_types import TProtocol

    info = node_info(addr)
    while not stop.is_set():
        host = raw_host()
        async with host.run([]):
            for _ in range(5):
                with suppress(Exception), trio.move_on_after(5):
                    await host.connect(info)
                    stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
                    await stream.close()
                    await host.disconnect(info.peer_id)
                    count("churn")
            with suppress(Exception), trio.move_on_after(2):
                await host.close()


async def forward_dated(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """A valid signer 29 s ahead of the node floods signed messages."""
    me = Identity.from_seed(b"\xc0" * 32)
    async with (
        Libp2pTransport.open(me, config=CLIENT_CONFIG, bootstrap=[addr]) as transport,
        open_bus(me, transport, config=BusConfig(clock=lambda: time.time() + 29)) as bus,
    ):
        n = 0
        while not stop.is_set():
            n += 1
            with suppress(AxlError):
                await bus.send(NODE.peer_id, Ping(n=n))
                count("forward_dated")
            if n % 50 == 0:
                await trio.lowlevel.checkpoint()


async def half_sent(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """Streams announcing a 1,000,000-byte frame, sending 200 kB of it, then stalling."""
    from libp2p.custom_types import TProtocol

    info = node_info(addr)
    while not stop.is_set():
        host = raw_host()
        async with host.run([]):
            with suppress(Exception), trio.move_on_after(10):
                await host.connect(info)
                for _ in range(4):
                    stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
                    await stream.write((1_000_000).to_bytes(4, "big") + b"h" * 200_000)
                    count("half_sent")
                await trio.sleep(3)  # longer than the node's partial_frame_timeout
            with suppress(Exception), trio.move_on_after(2):
                await host.close()


async def flood(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """Well-framed junk as fast as it goes (the bus rejects each frame as undecodable)."""
    from libp2p.custom_types import TProtocol

    info = node_info(addr)
    batch = encode_batch([b"junk-" + bytes([i]) * 40 for i in range(64)])
    while not stop.is_set():
        host = raw_host()
        async with host.run([]):
            with suppress(Exception), trio.move_on_after(10):
                await host.connect(info)
                stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL_ID)])
                while not stop.is_set():
                    await stream.write(batch)
                    count("flood")
            with suppress(Exception), trio.move_on_after(2):
                await host.close()


async def plaintext(addr: str, stop: trio.Event, count: Callable[[str], None]) -> None:
    """Dials offering only plaintext, claiming honest client 0's peer id."""
    victim = Identity.from_seed(bytes([HONEST_SEED]) * 32)
    info = node_info(addr)
    while not stop.is_set():
        host = raw_host(plaintext_as=victim)
        async with host.run([]):
            for _ in range(5):
                try:
                    with trio.fail_after(5):
                        await host.connect(info)
                    count("plaintext_accepted")  # must never happen
                except Exception:
                    count("plaintext")
            with suppress(Exception), trio.move_on_after(2):
                await host.close()


ATTACKS = (churn, forward_dated, half_sent, flood, plaintext)


async def lifetime_churn(addr: str, total: int, clients: int) -> tuple[int, int, float]:
    """``total`` connections over the node's lifetime, each opened and closed before its client
    dials again (``clients`` at a time): py-libp2p 0.8.1 alone refused every one after 250.
    Returns (served, refused, seconds)."""
    info = node_info(addr)
    served = refused = 0
    per_client = max(1, total // clients)

    async def client() -> None:
        nonlocal served, refused
        host = raw_host()
        async with host.run([]):
            network = host.get_network()
            for _ in range(per_client):
                try:
                    with trio.fail_after(10):
                        await host.connect(info)
                        await host.disconnect(info.peer_id)
                        while network.connections.get(info.peer_id):
                            await trio.sleep(0.005)
                    served += 1
                except Exception:
                    refused += 1
            with suppress(Exception), trio.move_on_after(2):
                await host.close()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    return served, refused, time.perf_counter() - start


# -- the run -------------------------------------------------------------------------------


class NodeProcess:
    """The child process and the latest stats it printed."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.addr = ""
        self.stats: dict[str, Any] = {}
        self.peak_rss = 0
        self.ready = trio.Event()

    async def read(self) -> None:
        assert self.process.stdout is not None
        pending = b""
        async for chunk in self.process.stdout:
            pending += chunk
            *rows, pending = pending.split(b"\n")
            for row in rows:
                text = row.decode()
                if text.startswith("ADDR "):
                    self.addr = text[5:]
                    self.ready.set()
                elif text.startswith("STATS "):
                    self.stats = json.loads(text[6:])
                    self.peak_rss = max(self.peak_rss, self.stats["rss"])


async def attack_for(addr: str, seconds: float, attacks: dict[str, int]) -> None:
    stop = trio.Event()

    def count(name: str) -> None:
        attacks[name] = attacks.get(name, 0) + 1

    async with trio.open_nursery() as nursery:
        for attack in ATTACKS:
            nursery.start_soon(attack, addr, stop, count)
        await trio.sleep(seconds)
        stop.set()  # the loops finish what they are doing; whatever still runs in 5 s is cut
        nursery.cancel_scope.deadline = trio.current_time() + 5


def report(name: str, tally: Tally) -> list[str]:
    total = tally.ok + tally.failed
    rate = 100.0 * tally.ok / total if total else float("nan")
    return [
        line(f"{name}: honest requests served", tally.ok, "req"),
        line(f"{name}: honest requests failed", tally.failed, "req"),
        line(f"{name}: honest success rate", rate, "%"),
        line(f"{name}: round trip p50", 1e6 * percentile(tally.rtts, 0.5), "µs"),
    ]


async def lines_of(stream: Any) -> AsyncIterator[str]:
    pending = b""
    async for chunk in stream:
        pending += chunk
        *rows, pending = pending.split(b"\n")
        for row in rows:
            yield row.decode()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    me = [sys.executable, "-m", "benchmarks.adversarial_soak"]
    server = await trio.lowlevel.open_process(
        [*me, "--serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    clients: trio.Process | None = None
    node = NodeProcess(server)
    attacks: dict[str, int] = {}
    tally: dict[str, Any] = {}
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.read)
            with trio.fail_after(60):
                await node.ready.wait()
            clients = await trio.lowlevel.open_process(
                [*me, "--clients", node.addr, "--honest", str(args.honest)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            assert clients.stdin is not None and clients.stdout is not None
            replies = lines_of(clients.stdout)
            with trio.fail_after(60):
                async for row in replies:
                    if row == "READY":
                        break
            await trio.sleep(args.anchor_seconds)
            rss_before = node.stats.get("rss", 0)
            node.peak_rss = rss_before
            await clients.stdin.send_all(b"attack\n")
            await attack_for(node.addr, args.seconds, attacks)
            await clients.stdin.send_all(b"end\n")
            with trio.fail_after(30):
                async for row in replies:
                    if row.startswith("TALLY "):
                        tally = json.loads(row[6:])
                        break
            await trio.sleep(args.settle)  # stalled streams time out, budgets drain
            churned = (0, 0, 0.0)
            if args.lifetime_connections:
                churned = await lifetime_churn(node.addr, args.lifetime_connections, 40)
                await trio.sleep(1.0)
            final = dict(node.stats)
            nursery.cancel_scope.cancel()
    finally:
        for process in (server, clients):
            if process is not None:
                with suppress(ProcessLookupError):
                    process.kill()
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await process.wait()
    anchor = Tally(**{k: v for k, v in tally["anchor"].items()})
    attacked = Tally(**{k: v for k, v in tally["attack"].items()})
    total = attacked.ok + attacked.failed
    rate = 100.0 * attacked.ok / total if total else 0.0
    anchor_p50 = percentile(anchor.rtts, 0.5)
    attacked_p50 = percentile(attacked.rtts, 0.5)
    counters = final.get("transport", {})
    bus_counters = final.get("bus", {})
    rows = [
        *report("anchor (no attackers)", anchor),
        *report("under attack", attacked),
        line("ratio attacked/anchor round trip p50", attacked_p50 / anchor_p50, "x"),
        line("node RSS before the attack", rss_before / 2**20, "MiB"),
        line("node RSS peak during the attack", node.peak_rss / 2**20, "MiB"),
        line("node RSS after it", final.get("rss", 0) / 2**20, "MiB"),
        line(
            "node buffer budget (max_buffered_bytes)", NODE_CONFIG.max_buffered_bytes / 2**20, "MiB"
        ),
        line(
            "node RSS growth / buffer budget",
            (node.peak_rss - rss_before) / NODE_CONFIG.max_buffered_bytes,
            "x",
        ),
        line("node partial-frame bytes held at the end", final.get("buffered", 0), "B"),
        line("node inbound connections open at the end", final.get("connections", 0), ""),
    ]
    if args.lifetime_connections:
        rows.append(line("lifetime connections served afterwards", churned[0], ""))
        rows.append(line("lifetime connections refused afterwards", churned[1], ""))
        rows.append(line("lifetime connections per second", churned[0] / churned[2], "conn/s"))
    for name, value in sorted(attacks.items()):
        rows.append(line(f"attack sent: {name}", value, ""))
    for key in sorted(counters):
        if key.startswith(("inbound.refused_", "peers.cut_off", "inbound.throttled")):
            rows.append(line(f"node transport: {key}", counters[key], ""))
    for key in sorted(bus_counters):
        if key.startswith(("rejected.", "received")):
            rows.append(line(f"node bus: {key}", bus_counters[key], ""))
    rows.append(
        f"  honest success rate under attack {rate:.2f} % (target >= 99 %): "
        + ("met" if rate >= 99.0 else "NOT met")
    )
    if anchor.failed or attacked.errors:
        rows.append(f"  honest failures by type: {attacked.errors}")
    print("\n".join(rows), flush=True)
    return {
        "anchor": anchor,
        "attacked": attacked,
        "attacks": attacks,
        "rate": rate,
        "node": final,
        "rss_before": rss_before,
        "peak_rss": node.peak_rss,
        "lifetime_connections": churned,
    }


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the attack")
    parser.add_argument("--anchor-seconds", type=float, default=8.0)
    parser.add_argument("--honest", type=int, default=3, help="honest clients")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument(
        "--lifetime-connections",
        type=int,
        default=2000,
        help="after the attack, this many connections in turn (0: skip)",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clients", metavar="ADDR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)  # refused attackers are not news
    if args.serve:
        with suppress(KeyboardInterrupt):
            trio.run(serve)
        return None
    if args.clients:
        trio.run(honest_clients, args.clients, args.honest)
        return None
    if args.quick:
        args.seconds, args.anchor_seconds, args.honest, args.settle = 6.0, 2.0, 2, 2.5
        args.lifetime_connections = 0
    result: dict[str, Any] = trio.run(run, args)
    return result


if __name__ == "__main__":
    main()

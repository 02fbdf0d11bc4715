"""The parties of ``benchmarks.adversarial_soak`` that play by the rules: the node under attack
(run in a child process), the honest clients (their own process) and what both share: the
identities, the configs and the ``Ping``/``Pong`` messages."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

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

from ._report import rss_bytes

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

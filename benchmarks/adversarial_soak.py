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

The node and the honest clients are in ``benchmarks._soak_peers``, the attackers in
``benchmarks._soak_attacks``; this module runs the processes and reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import trio
import trio.lowlevel

from ._report import line, percentile
from ._soak_attacks import attack_for, lifetime_churn
from ._soak_peers import NODE_CONFIG as NODE_CONFIG  # the tests read the budget here
from ._soak_peers import Tally, honest_clients, serve

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

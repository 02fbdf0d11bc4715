"""How many agents one process hosts: memory per idle agent and wall time per simulated second.

For each population size N (default 1,000 and 10,000), in a fresh subprocess each:

* **idle**: N agents (one ``@on`` handler each) started in an :class:`AgentRuntime` on the
  memory transport; resident memory (RSS) growth divided by N. Everything an agent costs is
  included: identity, transport, bus, agent object, state handle, tasks.
* **active**: N agents, each sending one direct message per simulated second (``@every(1.0)``)
  to the next agent in a ring, under ``trio.testing.MockClock`` (autojump), so simulated time is
  free and the wall time per simulated second is pure CPU.

Anchors, measured in the same run on the same machine:

* **bare bus**: the same N identities, transports and buses with no agent layer: a handler
  per bus and a plain ``while True: sleep(1); send`` task per bus (what you would write
  without ``agents``). Its memory is measured before those sender tasks exist.
* **crypto floor**: N x (sign + verify) of the same envelope, with no bus at all.

    python -m benchmarks.agents_scale [--agents 1000 10000] [--seconds 5] [--quick] [--breakdown]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import trio
import trio.testing

from agents import Agent, AgentRuntime, Context, every, on
from axl import Bus, BusConfig, Identity, MemoryNetwork, Message

from ._report import line, sign_verify_seconds


class Poke(Message, tag="bench.agents.poke"):
    seq: int


class Idle(Agent):
    @on(Poke)
    async def poke(self, msg: Poke, ctx: Context) -> None:
        pass


class Chatty(Agent):
    target: Any = None

    @on(Poke)
    async def poke(self, msg: Poke, ctx: Context) -> None:
        pass

    @every(1.0)
    async def tick(self) -> None:
        await self.send(self.target, Poke(seq=1))


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle_memory() -> int:
    gc.collect()
    return rss_bytes()


# -- scenarios (each runs in its own process) --------------------------------------------------


async def _agents_scenario(n: int, seconds: float, active: bool, breakdown: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    cls = Chatty if active else Idle
    if breakdown:
        tracemalloc.start(1)
    before = settle_memory()
    traced0 = tracemalloc.get_traced_memory()[0] if breakdown else 0
    snapshot0 = tracemalloc.take_snapshot() if breakdown else None
    runtime = AgentRuntime(seed=1, flush_interval=None)
    agents = [runtime.add(cls(name=f"a{i}")) for i in range(n)]
    for i, agent in enumerate(agents):
        if isinstance(agent, Chatty):
            agent.target = agents[(i + 1) % n].peer_id
    start = time.perf_counter()
    async with runtime:
        result["startup_s"] = time.perf_counter() - start
        await trio.sleep(0.5)
        result["rss_per_agent"] = (settle_memory() - before) / n
        if breakdown and snapshot0 is not None:
            result["traced_per_agent"] = (tracemalloc.get_traced_memory()[0] - traced0) / n
            result["breakdown"] = _top(tracemalloc.take_snapshot(), snapshot0, n)
        if active:
            await trio.sleep(1.0)  # one tick round as warm-up
            handled0 = runtime.totals().get("handled", 0)
            result["wall_per_sim_s"] = await _best_second(seconds)
            result["delivered_per_sim_s"] = (runtime.totals()["handled"] - handled0) / seconds
            result["rss_per_active_agent"] = (settle_memory() - before) / n
        stop0 = time.perf_counter()
    result["shutdown_s"] = time.perf_counter() - stop0
    return result


async def _best_second(seconds: float) -> float:
    """Sleep ``seconds`` of simulated time, one second at a time; the lowest wall time of a
    simulated second (the work is the same every second, so the minimum is the cost with the
    least interference from other processes on a shared machine)."""
    walls = []
    for _ in range(max(1, round(seconds))):
        wall0 = time.perf_counter()
        await trio.sleep(1.0)
        walls.append(time.perf_counter() - wall0)
    return min(walls)


def _top(snapshot: tracemalloc.Snapshot, base: tracemalloc.Snapshot, n: int) -> list[str]:
    stats = snapshot.compare_to(base, "filename")
    rows = []
    for stat in stats[:12]:
        frame = stat.traceback[0]
        name = frame.filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append(f"{stat.size_diff / n:8.0f} B  {name}")
    return rows


async def _bus_scenario(n: int, seconds: float, active: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    before = settle_memory()
    network = MemoryNetwork()
    identities = [Identity.from_seed(i.to_bytes(32, "big")) for i in range(1, n + 1)]
    offset = time.time() - trio.current_time()
    config = BusConfig(clock=lambda: offset + trio.current_time())
    received = 0

    async def on_poke(msg: Poke, ctx: Context) -> None:
        nonlocal received
        received += 1

    async with trio.open_nursery() as nursery:
        buses = []
        for identity in identities:
            bus = Bus(identity, network.connect(identity.peer_id), config=config)
            bus.on(Poke, on_poke)
            await nursery.start(bus.run)
            buses.append(bus)
        await trio.sleep(0.5)
        result["rss_per_agent"] = (settle_memory() - before) / n
        if active:
            peers = [identity.peer_id for identity in identities]

            async def sender(bus: Bus, peer: Any) -> None:
                while True:
                    await trio.sleep(1.0)
                    await bus.send(peer, Poke(seq=1))

            for i, bus in enumerate(buses):
                nursery.start_soon(sender, bus, peers[(i + 1) % n])
            await trio.sleep(1.0)
            received0 = received
            result["wall_per_sim_s"] = await _best_second(seconds)
            result["delivered_per_sim_s"] = (received - received0) / seconds
        nursery.cancel_scope.cancel()
    return result


def _crypto_floor(n: int) -> dict[str, Any]:
    """Best of three: N x (encode + sign + decode + verify) of one envelope."""
    return {"wall_per_sim_s": min(_crypto_once(n) for _ in range(3))}


def _crypto_once(n: int) -> float:
    alice, bob = Identity.from_seed(b"\x01" * 32), Identity.from_seed(b"\x02" * 32)
    payload = Poke(seq=1).encode_payload()
    return sign_verify_seconds(alice, bob.peer_id, Poke.axl_tag, itertools.repeat(payload, n))


def child(argv: Sequence[str]) -> None:
    kind, n, seconds, breakdown = argv[0], int(argv[1]), float(argv[2]), argv[3] == "1"
    clock = trio.testing.MockClock(autojump_threshold=0)
    if kind == "crypto":
        result = _crypto_floor(n)
    elif kind in ("idle-agents", "active-agents"):
        active = kind == "active-agents"
        result = trio.run(_agents_scenario, n, seconds, active, breakdown, clock=clock)
    else:
        result = trio.run(_bus_scenario, n, seconds, kind == "active-bus", clock=clock)
    print(json.dumps(result))


def run_child(kind: str, n: int, seconds: float, breakdown: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.agents_scale", "--child", kind, str(n)]
    command += [str(seconds), "1" if breakdown else "0"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} x{n} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ratio(label: str, value: float, anchor: float) -> None:
    print(f"  ratio {label:<42} {value / anchor:>8.2f}x")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated seconds timed")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--breakdown", action="store_true", help="tracemalloc: what costs memory")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.seconds = [200], 2.0
    print(f"AXL agents per process: memory transport, MockClock, {os.cpu_count()} CPUs")
    for n in args.agents:
        idle = run_child("idle-agents", n, args.seconds)
        idle_bus = run_child("idle-bus", n, args.seconds)
        active = run_child("active-agents", n, args.seconds)
        active_bus = run_child("active-bus", n, args.seconds)
        crypto = run_child("crypto", n, args.seconds)
        kib, ms = 1 / 1024, 1e3
        print(f"{n:,} agents, each sending 1 message per simulated second")
        print(line("idle agent: RSS per agent", idle["rss_per_agent"] * kib, "KiB"))
        print(
            line(
                "bare bus: RSS per idle bus (no agent layer)",
                idle_bus["rss_per_agent"] * kib,
                "KiB",
            )
        )
        print(
            line(
                "active agent: RSS per agent after the run",
                active["rss_per_active_agent"] * kib,
                "KiB",
            )
        )
        print(line("startup of all agents", idle["startup_s"], "s"))
        print(line("shutdown of all agents", idle["shutdown_s"], "s"))
        print(line("agents: wall time per simulated second", active["wall_per_sim_s"] * ms, "ms"))
        print(
            line(
                "bare bus: wall time per simulated second", active_bus["wall_per_sim_s"] * ms, "ms"
            )
        )
        print(line("crypto floor: N x (sign + verify)", crypto["wall_per_sim_s"] * ms, "ms"))
        print(
            line(
                "agents: messages handled per simulated second",
                active["delivered_per_sim_s"],
                "msg",
            )
        )
        print(
            line(
                "bare bus: messages handled per simulated s",
                active_bus["delivered_per_sim_s"],
                "msg",
            )
        )
        ratio(
            "agent/bare bus memory per idle agent", idle["rss_per_agent"], idle_bus["rss_per_agent"]
        )
        ratio(
            "agents/bare bus wall per simulated s",
            active["wall_per_sim_s"],
            active_bus["wall_per_sim_s"],
        )
        ratio(
            "agents/crypto floor wall per simulated s",
            active["wall_per_sim_s"],
            crypto["wall_per_sim_s"],
        )
        ratio("simulated/real time (>= 1: real time kept)", 1.0, active["wall_per_sim_s"])
        verdict = "met" if idle["rss_per_agent"] < 20 * 1024 else "MISSED"
        print(f"  target < 20 KiB per idle agent: {verdict}")
        if args.breakdown:
            detail = run_child("idle-agents", n, args.seconds, breakdown=True)
            print(line("tracemalloc: bytes per idle agent", detail["traced_per_agent"], "B"))
            for row in detail["breakdown"]:
                print("    " + row)


if __name__ == "__main__":
    main()

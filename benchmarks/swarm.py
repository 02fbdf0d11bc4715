"""Wall time of one simulated market hour with 100, 1,000 and 10,000 agents.

Each size runs in a fresh subprocess: ``agents.sim.simulate`` on the memory network and the
embedded chain under MockClock. The swarm is 1 % submitters, 10 % verifiers, 0.1 % spammers
(at least one of each), the rest solvers; 1 % of the solvers cheat (kinds in turn) and 1 % of
the verifiers accuse falsely. Jobs arrive at ``--jobs-per-agent-hour`` x agents per hour (so
the market's work grows with the swarm and the cost per agent can stay flat), each a tiny MLP
of 2-4 steps offered to one solver drawn at random (a lazily started solver stakes before it
bids), a quarter of them checked by one verifier: training is a small share, the market
(bus, chain) the rest. The roles are ``agents.market``'s; the swarm trades in market shards of
250 agents. Timed: setup (chain deployment, wallets and agents built), start of
every agent, and the simulated hour plus its drain (4,800 s: the challenge and dispute windows
of the last jobs).

The CPU time of the whole simulation (setup, start and run) is printed too: on a shared
machine it moves less with the load than the wall time does. Anchors, measured in the same
run: chain transactions per second (AI-token transfers through the
same client), and starting and stopping N idle agents.

    python -m benchmarks.swarm [--agents 100 1000 10000] [--jobs-per-agent-hour 0.02] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from ._report import line

DRAIN = 4800  # simulated seconds after the arrivals: the last jobs' challenge + dispute windows


def scenario_for(n: int, jobs_per_agent_hour: float, hours: float) -> Any:
    from agents.sim import CHEAT_KINDS, Scenario

    submitters = max(1, n // 100)
    verifiers = max(2, n // 10)
    spammers = max(1, n // 1000)
    solvers = n - 1 - submitters - verifiers - spammers
    cheats = max(1, solvers // 100)
    kinds = {kind: cheats // len(CHEAT_KINDS) for kind in CHEAT_KINDS}
    for kind in CHEAT_KINDS[: cheats % len(CHEAT_KINDS)]:
        kinds[kind] += 1
    return Scenario.parse(
        {
            "name": f"bench-{n}",
            "seed": 1,
            "duration": 3600 * hours,
            "drain": DRAIN,
            "sample_interval": 30,
            "provision": "lazy",
            "spam_rate": 0.2,
            "roles": {
                "submitters": submitters,
                "solvers": solvers,
                "verifiers": verifiers,
                "spammers": spammers,
            },
            "adversaries": {
                "cheats": {k: v for k, v in kinds.items() if v},
                "false_accusers": max(1, verifiers // 100),
            },
            "jobs": {
                "rate_per_hour": jobs_per_agent_hour * n,
                "steps": [2, 4],
                "verify_rate": 0.25,
                "checkers": 1,
                "candidates": 1,  # each job offered to one solver: it alone stakes to bid
            },
            "market": {"challenge_window": 600, "dispute_window": 3600, "settle_interval": 60},
        }
    )


def _chain_anchor(transactions: int = 30) -> float:
    from coordination import Chain

    chain = Chain.embedded()
    chain = chain.deploy(allocations={chain.address: 10**24})
    to = chain.dev_accounts()[1].address
    start = time.perf_counter()
    for _ in range(transactions):
        chain.transfer(to, 1)
    return transactions / (time.perf_counter() - start)


def _agents_anchor(n: int) -> float:
    import trio
    import trio.testing

    from agents import Agent, AgentRuntime

    async def run() -> float:
        runtime = AgentRuntime(seed=1, flush_interval=None)
        for i in range(n):
            runtime.add(Agent(name=f"idle-{i}"))
        start = time.perf_counter()
        async with runtime:
            await trio.sleep(1)
        return time.perf_counter() - start

    return trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


def child(argv: Sequence[str]) -> None:
    kind, n, rate, hours = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    if kind == "chain":
        print(json.dumps({"tx_per_s": _chain_anchor()}))
        return
    if kind == "idle":
        print(json.dumps({"start_stop_s": _agents_anchor(n)}))
        return
    from agents.sim import simulate

    cpu = time.process_time()
    report = simulate(scenario_for(n, rate, hours))
    cpu = time.process_time() - cpu
    s = report.summary
    print(
        json.dumps(
            {
                **report.timings,
                "cpu_s": cpu,
                "agents": s["agents"]["total"],
                "jobs": s["jobs"]["total"],
                "settled": s["jobs"]["settled"],
                "blocks": s["chain"]["blocks"],
                "frames": sum(s["bus"]["frames_by_type"].values()),
                "ok": report.ok,
                "checks": s["checks"],
            }
        )
    )


def run_child(*args: object) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.swarm", "--child", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--jobs-per-agent-hour", type=float, default=0.02)
    parser.add_argument("--hours", type=float, default=1.0, help="simulated hours of arrivals")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 60 agents, 0.1 h")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.hours = [60], 0.1
    print(
        f"AXL swarm simulation: {args.hours:g} simulated hour(s) of arrivals + {DRAIN:,} s drain, "
        f"{args.jobs_per_agent_hour:g} jobs per agent-hour, {os.cpu_count()} CPUs"
    )
    chain = run_child("chain", 0, 0, 0)
    print(line("anchor: chain transactions/s (token transfers)", chain["tx_per_s"], "tx/s"))
    cost: dict[int, float] = {}
    for n in args.agents:
        r = run_child("sim", n, args.jobs_per_agent_hour, args.hours)
        idle = run_child("idle", r["agents"], 0, 0)
        cost[n] = r["run_s"] / r["agents"]
        print(f"{r['agents']:,} agents, {r['jobs']} jobs ({r['settled']} settled)")
        print(line("setup: chain, wallets, agents built", r["setup_s"], "s"))
        print(line("start of every agent", r["start_s"], "s"))
        print(line("the simulated hour + drain (wall)", r["run_s"], "s"))
        print(line("wall per agent", cost[n] * 1e3, "ms"))
        print(line("CPU time of the whole simulation (process)", r["cpu_s"], "s"))
        print(line("chain blocks mined", r["blocks"], "blocks"))
        print(line("  at the anchor rate that is", r["blocks"] / chain["tx_per_s"], "s"))
        print(line("bus frames sent", r["frames"], "frames"))
        print(line("anchor: start + stop of as many idle agents", idle["start_stop_s"], "s"))
        print(f"  checks: {json.dumps(r['checks'])}")
        if n == 10_000:
            verdict = "met" if r["run_s"] < 60 else "MISSED"
            print(f"  target: 10,000 agents' market hour under 60 s wall: {verdict}")
    if 1_000 in cost and 10_000 in cost:
        ratio = cost[10_000] / cost[1_000]
        print(f"  ratio 10,000-agent cost / (10 x 1,000-agent cost): {ratio:.2f}x (1 = flat)")


if __name__ == "__main__":
    main()

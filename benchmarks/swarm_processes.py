"""A real swarm: N agent processes on loopback, each started the way ``python -m agents`` runs
one agent, publishing on one topic every second and requesting a random live peer every 2 s.

    python -m benchmarks.swarm_processes [--nodes 40] [--seconds 30] [--churn] [--probe] [--quick]

Node 0 listens on a fixed loopback port and is every other node's only bootstrap peer. Each
node writes what it published, received and asked to a JSON-lines file; the parent reads them
afterwards, so measuring costs the swarm nothing while it runs. Printed:

* start-up: membership completion (every node knows every other one's address and has
  mesh peers on the topic), seconds after the last process started; beside it, when the last
  node came up (its agent started: all of them import and start on the same cores at once),
  membership counted from then, and the CPU a process spends coming up;
* steady state over ``--seconds``: topic delivery (received / expected, expected = every node
  that was up when the tick was published), requests served, publish→handler and request
  latency p50/p99, CPU ms per delivered topic message (all nodes' CPU from /proc over the
  window, divided by the deliveries in it), RSS per process;
* Kademlia lookups, in a phase of their own after the steady-state window (``--lookups``
  seconds; every node looks a random peer up every 10 s while publishing and requesting go
  on): share found, p50/p99, and what they cost: the phase's CPU above the window's rate per
  lookup, and CPU per delivered message in the phase (the steady-state figure *with*
  lookups; until December 2026 the lookups ran inside the window and that was the figure);
* with ``--churn``: a quarter of the nodes are killed with SIGKILL, restarted 10 s later (half
  with their identity, half with a new one); recovery time (from the restart until every later
  second meets the steady-state goals), and the worst survivor-to-survivor second meanwhile;
* exit codes after SIGTERM, and how long the nodes took to exit.

Anchor, measured in the same run: the signed-envelope floor (sign + verify of one AXL frame,
no bus), and the ratio of the CPU per delivered message to it. The machine's load average is
printed beside the figures (a shared 2-core machine makes them noisy); with ``--probe``, also
the VM's speed over the window (``benchmarks/_speed.py``: CPU per unit of fixed work, run at
nice 19 beside the swarm) and CPU per delivered message in those units, to compare runs the
VM's speed moved.

The modules: the node (``_swarm_node``), the parent's processes (``_swarm_procs``), the logs
read back (``_swarm_events``) and the report (``_swarm_report``); this one runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axl import Identity

from ._report import sign_verify_seconds
from ._speed import start_probe
from ._squeeze import squeezed
from ._swarm_events import Events, lifetimes
from ._swarm_node import ACTIVITIES, LOOKUPS_OFF, LOOKUPS_ON, Tick
from ._swarm_procs import (
    Swarm,
    bootstrap_addr,
    fill_bytecode_cache,
    free_port,
    machine_busy_seconds,
    rss_mib,
    wait_for_membership,
)
from ._swarm_report import report_churn, report_exits, report_steady


@dataclass
class Run:
    """What one swarm run left: every node's events and the run's timeline."""

    root: Path
    swarm: Swarm
    events: Events
    spans: dict[str, list[tuple[float, float]]]
    begin: float
    finish: float
    membership: float | None
    rss: list[float]
    cpu: float
    busy: float
    switches: tuple[int, int]
    churned: list[str]
    restarted_at: float
    codes: dict[str, int | None]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    last_start: float = 0.0
    lookups_begin: float = 0.0
    lookups_finish: float = 0.0
    lookups_cpu: float = 0.0
    """All nodes' CPU seconds over the lookup phase (0 without one)."""
    probe: tuple[int, float] | None = None
    """The speed probe's work units and CPU seconds over the window (``--probe``)."""


def run_swarm(
    count: int,
    *,
    seconds: float,
    settle: float,
    churn: bool,
    recovery: float,
    profile: str | None = None,
    warmup: float = 3.0,
    off: str = "",
    squeeze: float = 0.0,
    lookups: float = 0.0,
    probe: bool = False,
) -> Run:
    """Start ``count`` node processes, measure ``seconds`` of steady state, optionally kill a
    quarter (SIGKILL) and restart them 10 s later (every second one with a new identity),
    run ``recovery`` s more, stop everything with SIGTERM and read the logs. The steady-state
    window starts ``warmup`` s after membership is complete (or after ``settle`` s without
    it), so that it measures the swarm, not the tail of its start-up storm. ``off`` names
    activities the nodes leave out (see :data:`OFF_ENV`); a CPU hog asks for ``squeeze``
    cores over the window, the nodes reniced below it (:mod:`benchmarks._squeeze`). The
    nodes look peers up (DHT) only in a phase of ``lookups`` s right after the window (none
    with 0). With ``probe``, the speed probe (:mod:`benchmarks._speed`) runs beside the
    window; its CPU is left out of the machine's. The caller removes ``Run.root``."""
    fill_bytecode_cache()
    root = Path(tempfile.mkdtemp(prefix="axl-swarm-"))
    swarm = Swarm(root, free_port(), profile, off)
    load_before = os.getloadavg()
    try:
        swarm.start("n0")
        swarm.bootstrap = bootstrap_addr(root / "data" / "n0", swarm.port)
        for index in range(1, count):
            swarm.start(f"n{index}")
            time.sleep(0.05)
        last_start = time.time()
        joined = wait_for_membership(swarm, count, last_start + settle)
        membership = None if joined is None else joined - last_start
        time.sleep(warmup)
        begin = time.time()
        swarm.mark_cpu("begin")
        if profile is not None:  # the profiled node starts profiling now (PROFILE_ENV)
            (swarm.logs / f"{profile}.prof.start").touch()
        pids = [proc.process.pid for proc in swarm.procs.values()]
        with squeezed(squeeze, pids):
            busy = machine_busy_seconds()
            speed = start_probe(seconds) if probe else None
            time.sleep(seconds)
            busy = machine_busy_seconds() - busy
            swarm.mark_cpu("end")
        finish = time.time()
        probed = speed.result() if speed is not None else None
        if probed is not None:
            busy -= probed[1]
        rss = [rss_mib(p.process.pid) for p in swarm.procs.values()]
        cpu = sum(p.cpu_marks["end"] - p.cpu_marks["begin"] for p in swarm.procs.values())
        lookups_begin = lookups_finish = lookups_cpu = 0.0
        if lookups > 0:
            (swarm.logs / LOOKUPS_ON).touch()
            lookups_begin = time.time()
            time.sleep(lookups)
            swarm.mark_cpu("lookups")
            lookups_finish = time.time()
            (swarm.logs / LOOKUPS_OFF).touch()
            lookups_cpu = sum(
                p.cpu_marks["lookups"] - p.cpu_marks["end"] for p in swarm.procs.values()
            )
        switches = (
            sum(
                p.switch_marks["end"][0] - p.switch_marks["begin"][0] for p in swarm.procs.values()
            ),
            sum(
                p.switch_marks["end"][1] - p.switch_marks["begin"][1] for p in swarm.procs.values()
            ),
        )
        churned: list[str] = []
        restarted_at = 0.0
        if churn:
            victims = [f"n{i}" for i in range(1, count)]
            churned = random.Random(7).sample(victims, max(2, count // 4))
            for name in churned:
                swarm.kill(name)
            time.sleep(10.0)
            restarted_at = time.time()
            for position, name in enumerate(churned):
                if position % 2:  # a new identity: a fresh data directory and a new name
                    swarm.start(f"{name}b")
                else:
                    swarm.start(name)
            time.sleep(recovery)
        time.sleep(3.0)  # let the last ticks land
        load_after = os.getloadavg()
        codes = swarm.terminate()
    finally:
        swarm.kill_all()
    events = Events.read(swarm.logs)
    return Run(
        root,
        swarm,
        events,
        lifetimes(swarm, events),
        begin,
        finish,
        membership,
        rss,
        cpu,
        busy,
        switches,
        churned,
        restarted_at,
        codes,
        load_before,
        load_after,
        last_start,
        lookups_begin,
        lookups_finish,
        lookups_cpu,
        probed,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0, help="steady-state window")
    parser.add_argument("--settle", type=float, default=60.0, help="most to wait for membership")
    parser.add_argument("--churn", action="store_true", help="kill -9 a quarter, restart later")
    parser.add_argument("--recovery", type=float, default=40.0, help="churn phase after restart")
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="s from membership to the steady-state window"
    )
    parser.add_argument(
        "--off",
        default="",
        help=f"comma-separated activities the nodes leave out ({', '.join(ACTIVITIES)}): "
        "the fixed cost of a process, activity by activity",
    )
    parser.add_argument(
        "--squeeze",
        type=float,
        default=0.0,
        help="cores a CPU hog asks for over the window, the nodes reniced below it (what it "
        "got is printed as the machine CPU besides the swarm's): the swarm must batch",
    )
    parser.add_argument(
        "--lookups",
        type=float,
        default=30.0,
        help="s of the lookup phase after the window (DHT lookups: every node every 10 s)",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run the machine-speed probe beside the window (benchmarks/_speed.py)",
    )
    parser.add_argument("--quick", action="store_true", help="8 nodes, 15 s, churn")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the logs (path printed)")
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="cProfile one node from the window's start, e.g. n3 (--keep)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.seconds, args.churn, args.recovery = 8, 15.0, True, 30.0
        args.lookups = min(args.lookups, 10.0)
    count = max(4, args.nodes)
    unknown = set(filter(None, args.off.split(","))) - set(ACTIVITIES)
    if unknown:
        parser.error(f"--off: unknown activities {sorted(unknown)}")

    ident = Identity.generate()
    floor = sign_verify_seconds(
        ident, ident.peer_id, Tick.axl_tag, (b"x" * 64 for _ in range(2000))
    )
    floor_ms = 1000 * floor / 2000
    run = run_swarm(
        count,
        seconds=args.seconds,
        settle=args.settle,
        churn=args.churn,
        recovery=args.recovery,
        profile=args.profile,
        warmup=args.warmup,
        off=args.off,
        squeeze=args.squeeze,
        lookups=0.0 if "lookup" in args.off.split(",") else args.lookups,
        probe=args.probe,
    )
    figures: dict[str, Any] = {"nodes": count, "load_before": run.load_before}
    report_steady(run, args, floor_ms, figures)
    if args.churn:
        report_churn(run, count, args.recovery, figures)
    report_exits(run, figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    if args.keep:
        print(f"logs kept in {run.root}")
    else:
        shutil.rmtree(run.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

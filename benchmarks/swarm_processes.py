"""A real swarm: N agent processes on loopback, each started the way ``python -m agents`` runs
one agent, publishing on one topic every second and requesting a random live peer every 2 s.

    python -m benchmarks.swarm_processes [--nodes 40] [--seconds 30] [--churn] [--quick]

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
printed beside the figures (a shared 2-core machine makes them noisy).
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import gc
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import trio

from agents import Agent, Context, every, on
from axl import Identity, Message, PeerId

from ._report import interpreter, line, percentile, sign_verify_seconds
from ._squeeze import squeezed

TOPIC = "bench.swarm.ticks"
LOG_DIR_ENV = "AXL_SWARM_LOG_DIR"
PROFILE_ENV = "AXL_SWARM_PROFILE"
"""A file name: the node profiles its own CPU time (cProfile) from the steady-state window's
start (the parent then creates this name + ``.start``; the node looks for it twice a second)
until it stops, and writes the profile there."""
LOOKUPS_ON = "lookups.on"
LOOKUPS_OFF = "lookups.off"
"""Files the parent creates in the log folder to open and close the lookup phase; a node
looks up only while the first exists and the second does not."""
OFF_ENV = "AXL_SWARM_OFF"
"""Comma-separated activities a node leaves out (``publish``, ``ask``, ``lookup``): measuring
the fixed cost of a process, activity by activity (``--off``)."""
#: Set (to anything) in the parent's environment: every node also logs, with each membership
#: sample, the peers it learned since the last one and its discovery counters (``ev="k"``),
#: to see how and when early nodes learn the late ones.
TRACE_ENV = "AXL_SWARM_TRACE_DISCOVERY"
TRACE_COUNTERS = ("peer_exchange.learned", "peer_list.learned", "peers.dialled")
ACTIVITIES = ("publish", "ask", "lookup")
MODULE = "benchmarks.swarm_processes"
PACKAGES = ("axl", "agents", "benchmarks", "compute", "coordination")
"""The project's packages: a node imports from them (:func:`fill_bytecode_cache`)."""


class Tick(Message, tag="bench.swarm.tick"):
    origin: str
    seq: int
    sent: float


class Ping(Message, tag="bench.swarm.ping"):
    seq: int


class Pong(Message, tag="bench.swarm.pong"):
    seq: int


PREFIXES = ("peers.", "links.", "dht.", "peer_exchange.", "peer_list.", "yamux.")
"""Transport counters (besides gossip's) each node logs when it stops."""


class GcProbe:
    """Python's cyclic collector in this process: collections and seconds spent, per
    generation (``gc.callbacks``, the thread's CPU time), cumulative since :meth:`install`."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.thread_time()
        else:
            generation = info["generation"]
            self.counts[generation] += 1
            self.seconds[generation] += time.thread_time() - self._began

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def remove(self) -> None:
        with suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def totals(self) -> list[float]:
        """Collections of generations 0, 1, 2, then milliseconds spent in each."""
        return [*self.counts, *(round(1000 * s, 3) for s in self.seconds)]


def _raw(peer: PeerId) -> bytes:
    """A sort key for peer ids (their base58 form costs an encoding per comparison)."""
    return peer.raw


def receipt_line(origin: str, seq: int, now: float, sent: float) -> str:
    """The log line of one delivery: the JSON ``_event(ev="r", ...)`` writes, formatted
    directly (json.dumps of a dict per delivered message cost the swarm more than the line)."""
    return (
        f'{{"ev":"r","o":{json.dumps(origin)},"s":{seq:d},"t":{_json_float(now)},'
        f'"l":{_json_float(round(now - sent, 4))},"ps":{_json_float(sent)}}}\n'
    )


def _json_float(value: float) -> str:
    """``value`` as json.dumps writes it (``repr`` for a finite float)."""
    return repr(value) if math.isfinite(value) else json.dumps(value)


# -- the node (one per process, run by ``python -m agents``) -----------------------------------


class SwarmNode(Agent):
    """Publishes a :class:`Tick` every second, asks a random live peer every 2 s, and logs
    every event as a JSON line under ``$AXL_SWARM_LOG_DIR``."""

    topics = (TOPIC,)

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._seq = 0
        self._heard: dict[PeerId, float] = {}
        self._asked: set[PeerId] = set()  # peers this process has sent a request to
        self._out: IO[str] | None = None
        self._random = random.Random()
        self._profiler: cProfile.Profile | None = None
        self._off = set(filter(None, os.environ.get(OFF_ENV, "").split(",")))
        self._gc = GcProbe()
        self._traced: set[PeerId] | None = set() if os.environ.get(TRACE_ENV) else None

    def _live(self, now: float) -> list[PeerId]:
        """Peers heard on the topic in the last 5 s (with publishing off: the topic's peers
        as GossipSub knows them)."""
        if "publish" in self._off:
            transport: Any = self.bus.transport
            return sorted(transport.topic_peers(TOPIC), key=_raw)
        return [peer for peer, heard in self._heard.items() if now - heard < 5.0]

    def _log_file(self) -> IO[str]:
        if self._out is None:
            folder = Path(os.environ.get(LOG_DIR_ENV, "."))
            self._out = (folder / f"{self.name}-{os.getpid()}.jsonl").open("a")
        return self._out

    def _event(self, **event: Any) -> None:
        self._log_file().write(json.dumps(event, separators=(",", ":")) + "\n")

    async def on_start(self) -> None:
        self._gc.install()
        # cpu: what coming up cost this process (interpreter, imports, host), the start-up
        # storm's share of every node
        self._event(ev="start", t=time.time(), peer=str(self.peer_id), cpu=time.process_time())
        if os.environ.get(PROFILE_ENV):
            self.start_soon(self._profile_later)

    async def _profile_later(self) -> None:
        start = os.environ[PROFILE_ENV] + ".start"
        # One stat of a local file twice a second, in the profiled node only: no thread hop.
        while not os.path.exists(start):  # noqa: ASYNC240
            await trio.sleep(0.5)
        self._profiler = cProfile.Profile(time.process_time)
        self._profiler.enable()

    async def on_stop(self) -> None:
        stats = getattr(self.bus.transport, "stats", None)
        transport = stats.snapshot() if stats is not None else {}
        gossip = {k: v for k, v in transport.items() if k.startswith(("gossip.", "topic."))}
        rest = {k: v for k, v in transport.items() if k.startswith(PREFIXES)}
        self._event(
            ev="stop", t=time.time(), counters=self.counters(), gossip=gossip, transport=rest
        )
        self._gc.remove()
        if self._profiler is not None:
            self._profiler.disable()
            self._profiler.dump_stats(os.environ[PROFILE_ENV])
        if self._out is not None:
            self._out.close()
            self._out = None

    @on(Tick)
    async def tick(self, msg: Tick, ctx: Context) -> None:
        now = time.time()
        self._heard[ctx.sender] = now
        self._log_file().write(receipt_line(msg.origin, msg.seq, now, msg.sent))

    @on(Ping)
    async def ping(self, msg: Ping, ctx: Context) -> Pong:
        return Pong(seq=msg.seq)

    @every(1.0)
    async def publish_tick(self) -> None:
        if "publish" in self._off:
            return
        self._seq += 1
        now = time.time()
        await self.publish(TOPIC, Tick(origin=self.name, seq=self._seq, sent=now))
        self._event(ev="p", s=self._seq, t=now)

    @every(1.0)
    async def membership(self) -> None:
        transport: Any = self.bus.transport
        now = time.time()
        known = transport.known_peers()
        self._event(
            ev="m",
            t=now,
            topic=len(transport.topic_peers(TOPIC)),
            known=len(known),
            gc=self._gc.totals(),
            g=[transport.stats[name] for name in WINDOW_COUNTERS],
        )
        if self._traced is not None and (learned := known - self._traced):
            self._traced |= learned
            stats = transport.stats.snapshot()
            new = sorted(str(peer) for peer in learned)
            self._event(ev="k", t=now, new=new, via={k: stats.get(k, 0) for k in TRACE_COUNTERS})
        if self._out is not None:
            self._out.flush()

    @every(10.0)
    async def lookup(self) -> None:
        """A Kademlia lookup (DHT network search, never the local peerstore) of a random
        peer heard on the topic: latency and success are logged."""
        transport: Any = self.bus.transport
        find = getattr(transport, "find_peer", None)
        candidates = (
            self._live(time.time()) if "publish" in self._off else sorted(self._heard, key=_raw)
        )
        if find is None or not candidates or "lookup" in self._off or not _lookup_phase():
            return
        peer = self._random.choice(candidates)
        stats = transport.stats
        found, rounds = stats["dht.found"], stats["dht.rounds"]
        now = time.time()
        with suppress(Exception):  # PeerUnreachable: counted as not found below
            await find(peer, timeout=10.0)
        ok = stats["dht.found"] - found
        hops = stats["dht.rounds"] - rounds
        self._event(ev="d", ok=ok, t=now, l=round(time.time() - now, 4), h=hops)

    @every(2.0)
    async def ask(self) -> None:
        now = time.time()
        live = self._live(now)
        if not live or "ask" in self._off:
            return
        peer = self._random.choice(live)
        first = int(peer not in self._asked)  # our first request to it: links are set up
        self._asked.add(peer)
        try:
            await self.request(peer, Ping(seq=self._seq), reply=Pong, timeout=5.0)
            self._event(ev="q", ok=1, t=now, l=round(time.time() - now, 4), f=first)
        except Exception as exc:
            why = str(exc)[:120]
            self._event(ev="q", ok=0, t=now, err=type(exc).__name__, why=why, f=first)


def _lookup_phase() -> bool:
    """Whether the parent's lookup phase is open (two stats of local files, every 10 s)."""
    folder = Path(os.environ.get(LOG_DIR_ENV, "."))
    return (folder / LOOKUPS_ON).exists() and not (folder / LOOKUPS_OFF).exists()


# -- the parent --------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    started: float
    killed: float | None = None
    cpu_marks: dict[str, float] = field(default_factory=dict)
    switch_marks: dict[str, tuple[int, int]] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> tuple[int, int]:
    """Voluntary (the process blocked: its event loop waited) and involuntary (preempted)
    context switches of a process's main thread so far, from /proc."""
    counts = {"voluntary_ctxt_switches": 0, "nonvoluntary_ctxt_switches": 0}
    try:
        for text in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = text.partition(":")
            if key in counts:
                counts[key] = int(value)
    except OSError:
        pass
    return counts["voluntary_ctxt_switches"], counts["nonvoluntary_ctxt_switches"]


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (all processes, /proc/stat):
    what the swarm did not use of it over a window is what else ran, which the swarm's
    figures depend on (starved processes batch more work per wake-up)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields]
    idle = ticks[3] + ticks[4]  # idle, iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    try:
        for text in Path(f"/proc/{pid}/status").read_text().splitlines():
            if text.startswith("VmRSS:"):
                return int(text.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def fill_bytecode_cache(root: Path | None = None) -> bool:
    """Compile the project's modules into their ``__pycache__`` where it is missing or stale
    (False if one fails to compile). Python writes that cache on a module's first import, so
    every start of an agent after the first finds it, except where ``PYTHONDONTWRITEBYTECODE``
    is set (as in this machine's sandbox): then each of the 40 processes compiled AXL's
    modules again at start-up (≈ 0.15 to 0.2 s of CPU each, about 4 s of the start-up storm
    on two cores). Compiling once, in the parent, measures the swarm as an operator's machine
    runs it."""
    base = Path(__file__).resolve().parent.parent if root is None else root
    folders = [base / package for package in PACKAGES if (base / package).is_dir()]
    return all([bool(compileall.compile_dir(folder, quiet=2)) for folder in folders])


class Swarm:
    def __init__(
        self, root: Path, bootstrap_port: int, profile: str | None = None, off: str = ""
    ) -> None:
        self.profile = profile
        self.off = off
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir()
        self.port = bootstrap_port
        self.bootstrap = ""
        self.procs: dict[str, Proc] = {}
        self.retired: list[Proc] = []
        self.exit_seconds: dict[str, float] = {}  # SIGTERM to exit, per node (terminate)

    def start(self, name: str) -> Proc:
        command = [sys.executable, "-m", "agents", f"{MODULE}:SwarmNode", "--name", name]
        command += ["--data-dir", str(self.root / "data")]
        command += ["--log-level", "WARNING"]
        if name == "n0":
            command += ["--listen", f"/ip4/127.0.0.1/tcp/{self.port}"]
        else:
            command += ["--bootstrap", self.bootstrap]
        env = {**os.environ, LOG_DIR_ENV: str(self.logs), "PYTHONUNBUFFERED": "1"}
        if self.off:
            env[OFF_ENV] = self.off
        if name == self.profile:
            env[PROFILE_ENV] = str(self.logs / f"{name}.prof")
        err = (self.logs / f"{name}.stderr").open("ab")
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=Path.cwd()
        )
        err.close()
        proc = Proc(name, process, time.time())
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.process.send_signal(signal.SIGKILL)
        proc.process.wait()
        proc.killed = time.time()
        self.retired.append(proc)

    def mark_cpu(self, label: str) -> None:
        for proc in self.procs.values():
            proc.cpu_marks[label] = cpu_seconds(proc.process.pid)
            proc.switch_marks[label] = context_switches(proc.process.pid)

    def terminate(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every node; their exit codes (None: killed after ``timeout``). How long
        each took to exit, polled every 20 ms, goes to ``exit_seconds``."""
        sent = time.time()
        for proc in self.procs.values():
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        deadline = sent + timeout
        codes: dict[str, int | None] = {}
        running = dict(self.procs)
        while running and time.time() < deadline:
            for name, proc in list(running.items()):
                code = proc.process.poll()
                if code is not None:
                    codes[name] = code
                    self.exit_seconds[name] = time.time() - sent
                    del running[name]
            time.sleep(0.02)
        for name, proc in running.items():
            codes[name] = None
            proc.process.kill()
            proc.process.wait()
        return {name: codes[name] for name in self.procs}

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.process.poll() is None:
                proc.process.kill()
                proc.process.wait()


@dataclass
class Events:
    """Every node's log, merged: publications, receipts, requests, membership samples."""

    publishes: list[tuple[str, int, float]] = field(default_factory=list)  # origin, seq, t
    receipts: dict[tuple[str, int], list[tuple[str, float, float]]] = field(default_factory=dict)
    requests: list[tuple[str, float, bool, float, bool]] = field(default_factory=list)
    """(node, asked at, served, round trip, the node's first request to that peer)"""
    failures: dict[str, int] = field(default_factory=dict)  # failed requests by kind, whole run
    membership: list[tuple[str, float, int]] = field(default_factory=list)
    gc: list[tuple[str, float, list[float]]] = field(default_factory=list)  # cumulative
    counters: list[tuple[str, float, list[float]]] = field(default_factory=list)
    """Per membership sample, the node's :data:`WINDOW_COUNTERS` (cumulative)."""
    lookups: list[tuple[str, float, bool, float, int]] = field(default_factory=list)
    starts: dict[str, list[float]] = field(default_factory=dict)  # name -> start times
    startup_cpu: dict[str, float] = field(default_factory=dict)  # name -> CPU s to come up
    gossip: dict[str, int] = field(default_factory=dict)  # transport counters, summed at stop
    transport: dict[str, int] = field(default_factory=dict)  # the other counters, summed
    stopped: int = 0  # nodes that logged their counters (SIGKILLed ones did not)

    @classmethod
    def read(cls, folder: Path) -> Events:
        events = cls()
        for path in sorted(folder.glob("*.jsonl")):
            name = path.name.rsplit("-", 1)[0]
            for text in path.read_text().splitlines():
                try:
                    event = json.loads(text)
                except ValueError:
                    continue  # a line cut short by SIGKILL
                kind = event["ev"]
                if kind == "p":
                    events.publishes.append((name, event["s"], event["t"]))
                elif kind == "r":
                    key = (event["o"], event["s"])
                    events.receipts.setdefault(key, []).append((name, event["t"], event["l"]))
                elif kind == "q":
                    request = (name, event["t"], bool(event["ok"]), event.get("l", 0))
                    events.requests.append((*request, bool(event.get("f", 0))))
                    if not event["ok"]:
                        kind = _failure_kind(event.get("err", "?"), event.get("why", ""))
                        events.failures[kind] = events.failures.get(kind, 0) + 1
                elif kind == "d":
                    lookup = (name, event["t"], bool(event["ok"]), event["l"], event["h"])
                    events.lookups.append(lookup)
                elif kind == "m":
                    events.membership.append((name, event["t"], event["topic"]))
                    if "gc" in event:
                        events.gc.append((name, event["t"], event["gc"]))
                    if "g" in event:
                        events.counters.append((name, event["t"], event["g"]))
                elif kind == "start":
                    events.starts.setdefault(name, []).append(event["t"])
                    if "cpu" in event:
                        events.startup_cpu.setdefault(name, event["cpu"])
                elif kind == "stop":
                    events.stopped += 1
                    for key, value in event.get("gossip", {}).items():
                        events.gossip[key] = events.gossip.get(key, 0) + value
                    for key, value in event.get("transport", {}).items():
                        events.transport[key] = events.transport.get(key, 0) + value
        return events


def _failure_kind(err: str, why: str) -> str:
    """A failed request's kind: the exception, and for PeerUnreachable what refused it."""
    if err != "PeerUnreachable":
        return err
    for marker, kind in (
        ("next dial in", "dial backoff"),
        ("timed out", "dial timed out"),
        ("no known address", "no address"),
        ("unable to connect", "dial failed"),
        ("lost", "connection lost"),
        ("closed", "connection closed"),
    ):
        if marker in why:
            return f"{err} ({kind})"
    return err


@dataclass
class Window:
    expected: int = 0
    delivered: int = 0
    latencies: list[float] = field(default_factory=list)
    asked: int = 0
    served: int = 0
    rtts: list[float] = field(default_factory=list)
    first_rtts: list[float] = field(default_factory=list)  # a node's first request to a peer
    again_rtts: list[float] = field(default_factory=list)  # to a peer it had asked before

    @property
    def delivery(self) -> float:
        return self.delivered / self.expected if self.expected else float("nan")

    @property
    def served_share(self) -> float:
        return self.served / self.asked if self.asked else float("nan")


def lifetimes(swarm: Swarm, events: Events) -> dict[str, list[tuple[float, float]]]:
    """name -> [(up since its agent started, down at kill or +inf)]."""
    ends: dict[str, list[float]] = {}
    for proc in swarm.retired:
        if proc.killed is not None:
            ends.setdefault(proc.name, []).append(proc.killed)
    spans: dict[str, list[tuple[float, float]]] = {}
    for name, starts in events.starts.items():
        kills = sorted(ends.get(name, []))
        for start in sorted(starts):
            end = next((k for k in kills if k > start), float("inf"))
            spans.setdefault(name, []).append((start, end))
    return spans


def measure(
    events: Events,
    spans: dict[str, list[tuple[float, float]]],
    start: float,
    end: float,
    *,
    among: set[str] | None = None,
    grace: float = 3.0,
) -> Window:
    """Delivery and requests for ticks published in [start, end): a (tick, node) pair is
    expected when the node was up from ``grace`` s before the tick until ``grace`` s after."""

    def up(name: str, t: float) -> bool:
        return any(a <= t - grace and t + grace < b for a, b in spans.get(name, []))

    window = Window()
    names = set(spans) if among is None else among
    for origin, seq, t in events.publishes:
        if not start <= t < end or origin not in names:
            continue
        got = {name: latency for name, _, latency in events.receipts.get((origin, seq), [])}
        for name in names:
            if name != origin and up(name, t):
                window.expected += 1
                if name in got:
                    window.delivered += 1
                    window.latencies.append(got[name])
    for name, t, ok, rtt, first in events.requests:
        if start <= t < end and name in names:
            window.asked += 1
            if ok:
                window.served += 1
                window.rtts.append(rtt)
                (window.first_rtts if first else window.again_rtts).append(rtt)
    return window


def received_between(events: Events, begin: float, end: float) -> int:
    """Topic messages delivered to a handler in [begin, end), by their receive time: the
    deliveries the CPU measured over the same window paid for. (Counting the deliveries of
    the ticks *published* in the window instead, as the delivery share does, leaves out the
    last seconds the CPU still covers.)"""
    return sum(
        1 for receipts in events.receipts.values() for _, t, _ in receipts if begin <= t < end
    )


def gc_over(events: Events, begin: float, end: float) -> tuple[int, list[float]] | None:
    """(nodes, summed GC totals) over [begin, end): per node, the last sample before ``end``
    minus the last before ``begin`` (nodes without both are left out)."""
    return samples_over(events.gc, begin, end, 6)


def samples_over(
    samples_of: list[tuple[str, float, list[float]]], begin: float, end: float, width: int
) -> tuple[int, list[float]] | None:
    """(nodes, summed cumulative samples) over [begin, end): per node, the last sample
    before ``end`` minus the last before ``begin`` (nodes without both are left out)."""
    by_node: dict[str, list[tuple[float, list[float]]]] = {}
    for name, t, totals in samples_of:
        by_node.setdefault(name, []).append((t, totals))
    nodes, summed = 0, [0.0] * width
    for samples in by_node.values():
        samples.sort(key=lambda sample: sample[0])
        first = [s for t, s in samples if t < begin]
        last = [s for t, s in samples if t < end]
        if not first or not last or len(first) == len(last):
            continue
        nodes += 1
        summed = [a + b - c for a, b, c in zip(summed, last[-1], first[-1], strict=True)]
    return (nodes, summed) if nodes else None


def report_lookups(run: Run, figures: dict[str, Any]) -> None:
    """The lookup phase: lookups started in it (found share, latency, rounds) and what they
    cost: the phase's CPU above the steady-state window's rate, per lookup, and CPU per
    delivered message over the phase (the steady-state figure with lookups)."""
    phase = run.lookups_finish - run.lookups_begin
    if phase <= 0:
        return
    window = run.cpu / (run.finish - run.begin)  # the steady-state window's cores
    lookups = [d for d in run.events.lookups if run.lookups_begin <= d[1] < run.lookups_finish]
    found = [lat for _, _, ok, lat, _ in lookups if ok]
    hops = [h for _, _, ok, _, h in lookups if ok]
    delivered = received_between(run.events, run.lookups_begin, run.lookups_finish)
    print(f"lookup phase ({phase:.0f} s after the window; every node every 10 s):")
    if lookups:
        print(line("DHT lookups that found the peer", 100 * len(found) / len(lookups), "%"))
        print(line("DHT lookup p50", 1000 * percentile(found, 0.5), "ms"))
        print(line("DHT lookup p99", 1000 * percentile(found, 0.99), "ms"))
        print(line("DHT lookup rounds (mean)", sum(hops) / max(1, len(hops)), ""))
        above = run.lookups_cpu - window * phase
        per_lookup = 1000 * above / len(lookups)
        print(line("CPU per lookup (phase above the window's rate)", per_lookup, "ms"))
        figures.update(
            dht_lookups=len(lookups),
            dht_found=len(found) / len(lookups),
            dht_p50=percentile(found, 0.5),
            dht_p99=percentile(found, 0.99),
            dht_rounds=sum(hops) / max(1, len(hops)),
            cpu_ms_per_lookup=per_lookup,
        )
    if delivered:
        with_lookups = 1000 * run.lookups_cpu / delivered
        print(line("CPU per delivered topic message, lookups on", with_lookups, "ms"))
        figures["cpu_ms_per_msg_with_lookups"] = with_lookups
    # Against a saturated machine the phase cannot use more than the window did, and the
    # excess per lookup says nothing (it can even come out below zero): the cores tell.
    cores = run.lookups_cpu / phase
    print(f"  {'swarm CPU, lookup phase / window (cores)':<44} {cores:>12.2f} / {window:.2f}")
    figures["swarm_cores_lookups"] = cores


def healthy(window: Window) -> bool:
    return (
        window.delivery >= 0.99
        and (not window.asked or window.served_share >= 0.99)
        and percentile(window.latencies, 0.99) < 1.0
    )


WINDOW_COUNTERS = (
    "gossip.messages_received",
    "gossip.chokes_sent",
    "gossip.unchokes_sent",
    "gossip.choke_repairs",
)
"""Transport counters each node samples every second, for their figures over the window."""

MESH_PEERS = 2
"""Topic peers a node must see before it counts as a member (GossipSub's D_low)."""


def wait_for_membership(swarm: Swarm, count: int, deadline: float) -> float | None:
    """Poll the logs until every live node's last sample knows an address for every other
    node and sees at least ``min(count - 1, MESH_PEERS)`` peers on the topic. (A node
    connects to ``target_peers`` others, not to all: past that, topic peers are its
    neighbours and the rest are reached through the mesh.) On time-out, prints which nodes
    fell short. Reads only each log's tail (the parent must not load the swarm it measures)."""
    need = min(count - 1, MESH_PEERS)
    latest: dict[str, tuple[float, int, int]] = {}
    while time.time() < deadline:
        time.sleep(1.0)
        latest = {}
        for path in swarm.logs.glob("*.jsonl"):
            name = path.name.rsplit("-", 1)[0]
            for text in _tail(path).splitlines():
                if '"ev":"m"' in text:
                    with suppress(ValueError):  # a line cut short
                        sample = json.loads(text)
                        if sample["t"] >= latest.get(name, (0.0, 0, 0))[0]:
                            latest[name] = (sample["t"], sample["topic"], sample["known"])
        live = set(swarm.procs)
        if live <= set(latest) and all(
            latest[n][1] >= need and latest[n][2] >= count - 1 for n in live
        ):
            return time.time()
    short = {
        name: latest.get(name, (0.0, 0, 0))[1:]
        for name in sorted(swarm.procs)
        if latest.get(name, (0.0, 0, 0))[1] < need or latest.get(name, (0.0, 0, 0))[2] < count - 1
    }
    print(f"  membership: {len(short)} nodes short (name: topic peers, known peers): {short}")
    return None


def _tail(path: Path, size: int = 32 * 1024) -> str:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode("utf-8", "replace")


def report_startup(
    events: Events, last_start: float, membership: float | None, count: int, figures: dict[str, Any]
) -> None:
    """The start-up storm beside membership: when the last of the first ``count`` nodes came up
    (its agent started) after the last process was started, membership counted from then, and
    the CPU a process spent to come up (all of them start at once on the same cores)."""
    first = [f"n{index}" for index in range(count)]
    up = [min(events.starts[name]) for name in first if name in events.starts]
    cpu = [events.startup_cpu[name] for name in first if name in events.startup_cpu]
    if len(up) < count:
        return
    last_up = max(up) - last_start
    print(line("last node up after last start", last_up, "s"))
    figures["last_up_s"] = last_up
    if membership is not None:
        print(line("membership complete after last node up", membership - last_up, "s"))
        figures["membership_after_up_s"] = membership - last_up
    if cpu:
        mean = sum(cpu) / len(cpu)
        print(line("CPU to come up per process (mean)", mean, "s"))
        figures["startup_cpu_s"] = mean


SATURATED_IDLE = 0.1
"""Below this share of the machine's cores idle over the window, the swarm used what the
machine had, and its CPU per delivered message says more about the machine than the code."""


def report_saturation(swarm_cores: float, busy_cores: float, cores: int | None = None) -> bool:
    """Print the swarm's CPU and the machine's idle share in cores; True (and a warning) when
    the machine was saturated. A saturated swarm's CPU per message is the machine's capacity
    divided by the deliveries: its processes wake for smaller batches whenever CPU frees up,
    so work the code no longer does is spent again on wake-ups, and a change that saves CPU
    shows only once the swarm needs less than the machine has (docs/libp2p.md, the
    fourteenth round)."""
    total = cores if cores is not None else (os.cpu_count() or 1)
    idle = max(0.0, total - busy_cores)
    print(
        f"  {'swarm CPU / machine idle (cores of ' + str(total) + ')':<44} "
        f"{swarm_cores:>7.2f} / {idle:.2f}"
    )
    saturated = idle < SATURATED_IDLE * total
    if saturated:
        print("    the machine was saturated: CPU per message is capped by it, not set by the code")
    return saturated


def report_window(title: str, window: Window) -> None:
    print(f"{title}:")
    print(line("topic delivery", 100 * window.delivery, "%"))
    print(line("requests served", 100 * window.served_share, "%"))
    print(line("publish→handler p50", 1000 * percentile(window.latencies, 0.5), "ms"))
    print(line("publish→handler p99", 1000 * percentile(window.latencies, 0.99), "ms"))
    print(line("request round trip p50", 1000 * percentile(window.rtts, 0.5), "ms"))
    print(line("request round trip p99", 1000 * percentile(window.rtts, 0.99), "ms"))
    for label, rtts in (
        ("  of them a node's first to that peer", window.first_rtts),
        ("  to a peer the node had asked before", window.again_rtts),
    ):
        p50, p99 = 1000 * percentile(rtts, 0.5), 1000 * percentile(rtts, 0.99)
        print(f"  {label:<44} {len(rtts):>12,} (p50 {p50:,.0f} / p99 {p99:,.0f} ms)")


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
) -> Run:
    """Start ``count`` node processes, measure ``seconds`` of steady state, optionally kill a
    quarter (SIGKILL) and restart them 10 s later (every second one with a new identity),
    run ``recovery`` s more, stop everything with SIGTERM and read the logs. The steady-state
    window starts ``warmup`` s after membership is complete (or after ``settle`` s without
    it), so that it measures the swarm, not the tail of its start-up storm. ``off`` names
    activities the nodes leave out (see :data:`OFF_ENV`); a CPU hog asks for ``squeeze``
    cores over the window, the nodes reniced below it (:mod:`benchmarks._squeeze`). The
    nodes look peers up (DHT) only in a phase of ``lookups`` s right after the window (none
    with 0). The caller removes ``Run.root``."""
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
            time.sleep(seconds)
            busy = machine_busy_seconds() - busy
            swarm.mark_cpu("end")
        finish = time.time()
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
    )
    events, spans, membership = run.events, run.spans, run.membership
    churned, restarted_at, codes = run.churned, run.restarted_at, run.codes
    rss, root = run.rss, run.root
    figures: dict[str, Any] = {"nodes": count, "load_before": run.load_before}
    load_after = run.load_after
    figures["membership_s"] = membership
    steady = measure(events, spans, run.begin, run.finish - 3.0)
    delivered = received_between(events, run.begin, run.finish)
    cpu_per_msg = 1000 * run.cpu / delivered if delivered else float("nan")

    off = f", {args.off} off" if args.off else ""
    if args.squeeze:
        off += f", a CPU hog asking for {args.squeeze:g} cores over the window"
    print(f"swarm of {count} processes on loopback ({os.cpu_count()} cores{off})")
    print(f"  load average before {figures['load_before'][0]:.2f}, after {load_after[0]:.2f}")
    figures["interpreter"] = interpreter()
    print(f"  interpreter {figures['interpreter']}")
    if membership is None:
        print(f"  membership NOT complete within {args.settle:.0f} s of the last start")
    else:
        print(line("membership complete after last start", membership, "s"))
    report_startup(events, run.last_start, membership, count, figures)
    print(line("steady-state window from last start + ", run.begin - run.last_start, "s"))
    report_window(f"steady state ({args.seconds:.0f} s)", steady)
    print(f"  {'CPU per delivered topic message':<44} {cpu_per_msg:>12.2f} ms")
    seconds = run.finish - run.begin
    per_process = 1000 * run.cpu / seconds / count
    print(line("CPU per process (all activities)", per_process, "ms/s"))
    figures["cpu_ms_per_s_per_process"] = per_process
    other = (run.busy - run.cpu) / seconds
    print(line("machine CPU besides the swarm's (cores)", other, ""))
    figures["other_cores"] = other
    figures["swarm_cores"] = run.cpu / seconds
    report_saturation(figures["swarm_cores"], run.busy / seconds)
    voluntary, preempted = run.switches
    if delivered:
        print(
            f"  {'context switches per process per s (vol/invol)':<44} "
            f"{voluntary / seconds / count:>7.0f} / {preempted / seconds / count:.0f}"
        )
        print(
            f"  {'voluntary context switches per delivered msg':<44} {voluntary / delivered:>12.2f}"
        )
        figures.update(
            switches_per_msg=voluntary / delivered, preempted_per_msg=preempted / delivered
        )
    gc_window = gc_over(events, run.begin, run.finish)
    if gc_window is not None:
        nodes, totals = gc_window
        per = seconds * nodes
        print(
            f"  {'GC per process per s: collections gen 0/1/2':<44} "
            f"{totals[0] / per:.1f} / {totals[1] / per:.2f} / {totals[2] / per:.3f}"
        )
        print(
            f"  {'GC per process per s: ms in gen 0/1/2':<44} "
            f"{totals[3] / per:.3f} / {totals[4] / per:.3f} / {totals[5] / per:.3f}"
        )
        figures["gc_ms_per_s_per_process"] = sum(totals[3:]) / per
    gossip = events.gossip
    handled = sum(len(got) for got in events.receipts.values())
    if gossip.get("gossip.rpcs_sent") and handled:
        # Over each process's whole life (written at SIGTERM), not just the window.
        copies = gossip.get("gossip.messages_received", 0) / handled
        coalesced = gossip.get("gossip.rpcs_queued", 0) / gossip["gossip.rpcs_sent"]
        print(f"  {'gossip copies received per delivered tick':<44} {copies:>12.2f}")
        print(f"  {'gossip RPCs queued per RPC written':<44} {coalesced:>12.2f}")
        figures.update(gossip_copies=copies, gossip_coalesced=coalesced)
        dropped = gossip.get("gossip.forward_dropped", 0) / handled
        inline = gossip.get("gossip.rpcs_inline", 0) / max(1, gossip.get("gossip.rpcs_received", 0))
        print(f"  {'queued forwards dropped per delivered tick':<44} {dropped:>12.2f}")
        print(f"  {'RPCs handled in the session reader':<44} {100 * inline:>12.1f} %")
        figures.update(gossip_forwards_dropped=dropped, gossip_inline=inline)
    window_counters = samples_over(events.counters, run.begin, run.finish, len(WINDOW_COUNTERS))
    if window_counters is not None and delivered:
        # Over the window, from the nodes' once-a-second samples.
        _, sums = window_counters
        rates = [value / delivered for value in sums]
        print(f"  {'window: copies received per delivered tick':<44} {rates[0]:>12.2f}")
        print(
            f"  {'window: CHOKE / UNCHOKE / repairs per delivered':<44} "
            f"{rates[1]:.3f} / {rates[2]:.3f} / {rates[3]:.3f}"
        )
        names = ("window_copies", "window_chokes", "window_unchokes", "window_repairs")
        figures.update(zip(names, rates, strict=True))
    if events.stopped:
        # Over each process's whole life, per node that stopped cleanly.
        for key, label in (
            ("peer_exchange.announced", "address announcements sent per node"),
            ("peer_exchange.learned", "announcements accepted per node"),
            ("peer_list.served", "peer lists served per node"),
        ):
            per_node = events.transport.get(key, 0) / events.stopped
            print(f"  {label:<44} {per_node:>12.1f}")
            figures[key] = per_node
    if events.failures:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(events.failures.items()))
        print(f"  failed requests over the whole run: {kinds}")
    report_lookups(run, figures)
    print(line("RSS per process (mean)", sum(rss) / len(rss), "MiB"))
    print(line("anchor: sign + verify one envelope", floor_ms, "ms"))
    print(f"  ratio CPU per delivered message / envelope floor   {cpu_per_msg / floor_ms:>8.1f}x")
    figures.update(
        delivery=steady.delivery,
        served=steady.served_share,
        p50=percentile(steady.latencies, 0.5),
        p99=percentile(steady.latencies, 0.99),
        cpu_ms_per_msg=cpu_per_msg,
        rss_mib=sum(rss) / len(rss),
        floor_ms=floor_ms,
    )

    if args.churn:
        survivors = {f"n{i}" for i in range(count)} - set(churned)
        recovery = None
        worst_survivor = float("nan") if not events.publishes else 1.0
        second = restarted_at
        end = restarted_at + args.recovery - 3.0
        while second < end:
            window = measure(events, spans, second, second + 1.0)
            if recovery is None and healthy(window):
                later = measure(events, spans, second, end)
                if healthy(later):
                    recovery = second - restarted_at
            second += 1.0
        second = restarted_at - 10.0
        while second < end:
            only = measure(events, spans, second, second + 1.0, among=survivors)
            if only.expected:  # a second with no tick expected says nothing
                worst_survivor = min(worst_survivor, only.delivery)
            second += 1.0
        after = measure(events, spans, restarted_at + 30.0, end)
        print(f"churn: {len(churned)} killed with SIGKILL, restarted 10 s later (half new ids)")
        if recovery is None:
            print("  NOT back to the steady-state goals before the end of the churn phase")
        else:
            print(line("back to steady state after restart", recovery, "s"))
        print(line("worst survivor-to-survivor second", 100 * worst_survivor, "%"))
        report_window("from 30 s after the restart", after)
        figures.update(recovery_s=recovery, worst_survivor=worst_survivor)
    bad = {name: code for name, code in codes.items() if code != 0}
    print(f"exit codes after SIGTERM: {len(codes) - len(bad)} of {len(codes)} clean {bad or ''}")
    figures["unclean_exits"] = bad
    exits = sorted(run.swarm.exit_seconds.values())
    if exits:
        print(line("SIGTERM to exit p50", percentile(exits, 0.5), "s"))
        print(line("SIGTERM to exit, slowest node", exits[-1], "s"))
        figures.update(exit_p50_s=percentile(exits, 0.5), exit_max_s=exits[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    if args.keep:
        print(f"logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def bootstrap_addr(data: Path, port: int, timeout: float = 60.0) -> str:
    """Node 0's dialable address: its identity file appears when the process starts."""
    key = data / "identity.key"
    deadline = time.time() + timeout
    while not key.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    peer = Identity.load(key).peer_id
    return f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer}"


if __name__ == "__main__":
    sys.exit(main())

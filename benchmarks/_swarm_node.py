"""One node of ``benchmarks.swarm_processes``: the agent each process runs (started the way
``python -m agents`` starts one), what it publishes, asks and looks up, and the JSON lines it
logs for the parent to read afterwards."""

from __future__ import annotations

import cProfile
import gc
import json
import math
import os
import random
import time
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

import trio

from agents import Agent, Context, every, on
from axl import Message, PeerId

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


WINDOW_COUNTERS = (
    "gossip.messages_received",
    "gossip.chokes_sent",
    "gossip.unchokes_sent",
    "gossip.choke_repairs",
)
"""Transport counters each node samples every second, for their figures over the window."""

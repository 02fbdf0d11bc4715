"""Reading a ``benchmarks.swarm_processes`` run back from the nodes' logs: every node's
events merged, and the delivery, requests and counters over any span of it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._report import percentile

if TYPE_CHECKING:
    from ._swarm_procs import Swarm


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


def healthy(window: Window) -> bool:
    return (
        window.delivery >= 0.99
        and (not window.asked or window.served_share >= 0.99)
        and percentile(window.latencies, 0.99) < 1.0
    )

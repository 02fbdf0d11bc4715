"""One worker of ``axl swarm simulate --processes N`` (see :mod:`._processes`), on this
machine or another: it joins the coordinator's hub over libp2p with the run's token, gets its
share of the agents (:mod:`._process_roles`), hosts them — each with its own libp2p host
(bootstrapped from the hub) and chain account — reports its counters every second (frames
sent by message type, the runtime's counters, spam sent) and stops when the hub says so (or
on SIGTERM / Ctrl-C, or when the hub has been unreachable for a minute).

    axl swarm worker --join /ip4/…/tcp/…/p2p/… --token HEX [--chain-rpc URL] [--listen MA]
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import trio

from axl import (
    Context,
    Identity,
    LinkProfile,
    PeerId,
    PeerUnreachable,
    RemoteError,
    RequestTimeout,
    Transport,
)
from coordination import CoordinationError

from .._agent import Agent, Status
from .._decorators import every, on
from .._runtime import AgentRuntime
from .._wiring import TransportFactory, identity_for, libp2p_transport
from ..market import Verifier
from ._errors import InvalidScenario
from ._netstats import CountingTransport, TrafficCounter
from ._process_links import LinkStats, Partitions, shaped
from ._process_messages import Assignment, Go, Join, Stop, WorkerReport
from ._process_roles import ArrivingSubmitter, build
from ._scenario import Scenario
from ._spammer import BusSpammer

JOIN_PATIENCE = 120.0  # seconds to reach the hub and get an assignment
REPORT_INTERVAL = 1.0
HUB_PATIENCE = 60.0  # seconds without a delivered report before the worker gives up


class _Counted(CountingTransport):
    """A counted libp2p transport that still offers the inner one's extras (bulk streams)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (or private): no recursion through _inner
            raise AttributeError(name)
        return getattr(self._inner, name)  # the inner transport's extras (bulk streams)


class _Wiring:
    """The worker's transports: libp2p for every agent; for the agents of its share, with
    the scenario's link profile on inbound frames and counted outbound (for spammers,
    signatures broken)."""

    def __init__(self, listen: str, join: str) -> None:
        self.traffic = TrafficCounter()
        self.links = LinkStats()
        self.profile = LinkProfile()
        self.partitions: Partitions | None = None
        self.seed = 0
        self.counted: set[PeerId] = set()
        self.mangled: set[PeerId] = set()
        self._base = libp2p_transport(listen=[listen], bootstrap=[join])

    def factory(self) -> TransportFactory:
        def open_transport(identity: Identity) -> AbstractAsyncContextManager[Transport]:
            return self._open(identity)

        return open_transport

    @asynccontextmanager
    async def _open(self, identity: Identity) -> AsyncIterator[Transport]:
        async with self._base(identity) as inner:
            peer = identity.peer_id
            if peer not in self.counted:
                yield inner
                return
            digest = hashlib.sha256(f"axl-processes/{self.seed}/links/{peer}".encode()).digest()
            rng = random.Random(digest)
            cut = self.partitions.cut_for(peer) if self.partitions is not None else None
            async with shaped(inner, self.profile, rng, self.links, cut) as linked:
                yield _Counted(linked, self.traffic, mangle=peer in self.mangled)


class WorkerLink(Agent):
    """The worker's control agent (not counted as a swarm agent): see the module doc."""

    def __init__(
        self, hub: PeerId, token: str, wiring: _Wiring, rpc: str | None, host: str
    ) -> None:
        super().__init__("worker-link")
        self.hub, self.token, self.wiring, self.rpc, self.host = hub, token, wiring, rpc, host
        self.index: int | None = None
        self.hosted: list[Agent] = []
        self.failure: str | None = None
        self._reported = time.monotonic()
        self.host_runtime: AgentRuntime  # set by run_worker: the runtime that hosts the share

    async def on_start(self) -> None:
        self.start_soon(self._join)

    async def _join(self) -> None:
        deadline = trio.current_time() + JOIN_PATIENCE
        while True:
            try:
                reply = await self.request(
                    self.hub, Join(token=self.token, host=self.host), reply=Assignment, timeout=10
                )
                break
            except RemoteError as exc:
                return self._fail(f"the hub refused: {exc.detail}")
            except (RequestTimeout, PeerUnreachable) as exc:
                if trio.current_time() > deadline:
                    return self._fail(f"no answer from the hub in {JOIN_PATIENCE:.0f} s: {exc}")
                await trio.sleep(1.0)
        self.index = reply.index
        try:
            self._host(json.loads(reply.plan))
        except (InvalidScenario, CoordinationError, KeyError, ValueError, TypeError) as exc:
            return self._fail(f"a bad assignment: {exc}")
        roles = Counter(type(agent).__name__ for agent in self.hosted)
        self.log.info(
            "joined hub %s as worker %d: hosting %d agents (%s)",
            self.hub.short(), self.index, len(self.hosted),
            ", ".join(f"{n} {role}" for role, n in sorted(roles.items())),
        )  # fmt: skip

    def _host(self, plan: dict[str, Any]) -> None:
        from eth_account import Account

        from coordination import AddressBook, Chain

        scenario = Scenario.parse(plan["scenario"])
        net = scenario.network
        self.wiring.profile = LinkProfile(latency=net.latency, jitter=net.jitter, loss=net.loss)
        self.wiring.seed = scenario.seed
        peers = [PeerId.from_string(p) for p in plan["peers"]]
        if net.partitions:
            windows = [(p.start, p.duration, p.share) for p in net.partitions]
            self.wiring.partitions = Partitions(windows, peers, scenario.seed)
        book = AddressBook.model_validate_json(plan["book"])
        rpc = self.rpc or plan["rpc"]
        seed = f"axl-sim-{scenario.seed}".encode()
        for member in plan["members"]:
            identity = identity_for(member["name"], None, seed)
            agent = build(
                member["name"], member["role"], member["behaviour"], scenario,
                referee=plan["referee"], partner=member.get("partner", ""),
                peers=[p for p in peers if p != identity.peer_id],
            )  # fmt: skip
            self.wiring.counted.add(identity.peer_id)
            chain = None
            if member["role"] == "spammer":
                self.wiring.mangled.add(identity.peer_id)
            else:
                account = Account.from_key(member["key"])
                chain = Chain.connect(rpc, account).with_address_book(book)
            self.host_runtime.add(agent, identity=identity, chain=chain)
            self.hosted.append(agent)

    def _fail(self, why: str) -> None:
        self.failure = why
        self.log.error("%s", why)
        self.runtime.stop()

    def report(self, *, final: bool = False) -> WorkerReport:
        """This worker's counters now (see :class:`WorkerReport`)."""
        hosted = self.hosted
        body: dict[str, Any] = {
            "frames": self.wiring.traffic.snapshot(),
            "counters": {
                **_totals(hosted),
                "delivered": self.wiring.links.delivered,
                "lost": self.wiring.links.lost,
                "partitioned": self.wiring.links.partitioned,
            },
            "spam_sent": sum(a.sent for a in hosted if isinstance(a, BusSpammer)),
            "ready": bool(hosted) and all(a.status is Status.RUNNING for a in hosted),
            "failed": sorted(a.name for a in hosted if a.status is Status.STOPPED),
        }
        if final:
            body["checked"] = {
                a.name: {str(job): ok for job, ok in a.checked.items()}
                for a in hosted
                if isinstance(a, Verifier)
            }
        return WorkerReport(index=self.index or 0, final=final, body=json.dumps(body))

    @every(REPORT_INTERVAL)
    async def _report(self) -> None:
        if self.index is None:
            return
        try:
            await self.send(self.hub, self.report())
            self._reported = time.monotonic()
        except PeerUnreachable:
            if time.monotonic() - self._reported > HUB_PATIENCE:
                self._fail(f"the hub was unreachable for {HUB_PATIENCE:.0f} s")

    @on(Go)
    async def go(self, message: Go, ctx: Context) -> None:
        if ctx.sender != self.hub:
            return
        self.log.info("the run started")
        if self.wiring.partitions is not None:
            self.wiring.partitions.start()
        for agent in self.hosted:
            if isinstance(agent, ArrivingSubmitter):
                agent.go.set()

    @on(Stop)
    async def stop_run(self, message: Stop, ctx: Context) -> WorkerReport | None:
        if ctx.sender != self.hub:
            return None
        final = self.report(final=True)
        self.log.info("the hub said stop: final report sent, stopping %d agents", len(self.hosted))
        self.start_soon(self._stop_soon)
        return final

    async def _stop_soon(self) -> None:
        await trio.sleep(0.5)  # the reply goes out first
        self.runtime.stop()


def _totals(agents: list[Agent]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for agent in agents:
        for key, value in agent.counters().items():
            totals[key] = totals.get(key, 0) + value
    return totals


def run_worker(
    join: str, token: str, *, rpc: str | None = None, listen: str = "/ip4/127.0.0.1/tcp/0"
) -> None:
    """Join the hub at multiaddr ``join`` (ending in ``/p2p/<peer id>``) and host the share it
    assigns until it says stop (blocking; SIGTERM and Ctrl-C stop it too). ``rpc``: the chain's
    URL as this machine reaches it (default: the coordinator's). Raises
    :class:`InvalidScenario` when the hub cannot be reached, refuses, or the plan is bad."""
    hub = PeerId.from_string(join.rsplit("/p2p/", 1)[-1])
    wiring = _Wiring(listen, join)
    link = WorkerLink(hub, token, wiring, rpc, host=listen)
    runtime = AgentRuntime([link], transport=wiring.factory(), flush_interval=None)
    link.host_runtime = runtime
    runtime.serve()
    if link.failure is not None:
        raise InvalidScenario(f"worker: {link.failure}")

"""``AgentRuntime``: runs one agent (a volunteer machine) or thousands (a simulation)."""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import itertools
import logging
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import trio

from axl import (
    Bus,
    BusConfig,
    Identity,
    Libp2pConfig,
    Libp2pTransport,
    MemoryNetwork,
    MessageRegistry,
    PeerId,
    Transport,
    default_registry,
)

from ._agent import Agent, Status
from ._decorators import TimerSpec
from ._errors import AgentError, AgentStartError, StateError, UnknownAgent
from ._state import State

logger = logging.getLogger("agents.runtime")

A = TypeVar("A", bound=Agent)

TransportFactory = Callable[[Identity], AbstractAsyncContextManager[Transport]]
"""Opens one identity's transport, e.g. ``lambda ident: network.connect(ident.peer_id)``."""


def libp2p_transport(
    *,
    listen: Sequence[str] | None = None,
    bootstrap: Sequence[str] | None = None,
    config: Libp2pConfig | None = None,
) -> TransportFactory:
    """A :data:`TransportFactory` that gives each agent its own py-libp2p host (its libp2p peer
    id is the agent's peer id): ``AgentRuntime(transport=libp2p_transport(bootstrap=[addr]))``.

    ``listen`` defaults to an ephemeral port on 127.0.0.1; with several agents in one process
    keep port 0 (each host binds its own port). ``bootstrap`` lists multiaddrs ending in
    ``/p2p/<peer id>`` (e.g. another process's ``agent.bus.transport.listen_addrs[0]``);
    peers learn each other's addresses through libp2p peer exchange from there. Opening raises
    ``OSError`` when a listen address cannot be bound.
    """

    def open_transport(identity: Identity) -> AbstractAsyncContextManager[Transport]:
        return Libp2pTransport.open(identity, listen=listen, bootstrap=bootstrap, config=config)

    return open_transport


_METRIC_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class AgentRuntime:
    """Hosts agents in one trio process: builds their identities, transports and buses, starts
    them, drives their periodic tasks and stops them gracefully.

    * Transport: by default every agent is attached to one in-process :class:`MemoryNetwork`
      (:attr:`network`, pass your own for latency/loss/partitions). Pass ``transport=`` (a
      :data:`TransportFactory`) to use another, e.g. :func:`libp2p_transport`.
    * Identities: ``data_dir/<name>/identity.key`` when ``data_dir`` is set (created on first
      run, reused after); else derived from ``seed`` and the name when ``seed`` is set
      (reproducible simulations; such keys are public, never use them on a real network);
      else fresh random keys.
    * State: ``data_dir/<name>/state.sqlite``, flushed every ``flush_interval`` seconds and when
      the agent stops; memory-only without ``data_dir``.
    * Names: every agent has a unique name; :meth:`peer` maps names (and peers added with
      :meth:`add_peer`, e.g. agents in other processes) to peer ids.

    ``agents`` are added at once under their own names (see :meth:`add` for more control).
    Run it with ``async with runtime:`` (agents run inside the block and stop at its end),
    ``await runtime.run()`` (until :meth:`stop` or cancellation) or ``runtime.serve()``
    (a blocking entry point for scripts: Ctrl-C or SIGTERM stops every agent gracefully).
    """

    def __init__(
        self,
        agents: Iterable[Agent] = (),
        *,
        network: MemoryNetwork | None = None,
        transport: TransportFactory | None = None,
        data_dir: str | Path | None = None,
        seed: int | bytes | None = None,
        bus_config: BusConfig | None = None,
        registry: MessageRegistry | None = None,
        peers: Mapping[str, PeerId] | None = None,
        stop_timeout: float = 5.0,
        flush_interval: float | None = 30.0,
    ) -> None:
        if network is not None and transport is not None:
            raise AgentError("give either network= (memory) or transport=, not both")
        self.network: MemoryNetwork | None = (
            None if transport is not None else network or MemoryNetwork()
        )
        self._transport_factory = transport
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._seed = seed
        self._bus_config = bus_config
        self._registry = registry or default_registry
        self.stop_timeout = stop_timeout
        self.flush_interval = flush_interval
        self._agents: dict[str, Agent] = {}
        self._peers: dict[str, PeerId] = dict(peers or {})
        self._config_cache: dict[type[Agent], BusConfig] = {}
        self._timers: list[tuple[float, int, Agent, int, int]] = []
        self._timer_order = itertools.count()
        self._timers_changed = trio.lowlevel.ParkingLot()
        self._agent_nursery: trio.Nursery | None = None
        self._stop_scope = trio.CancelScope()
        self._running = False
        self._context: Any = None
        self._base_config: BusConfig | None = None
        self._stopped = trio.Event()
        for agent in agents:
            self.add(agent)

    # -- agents and names --------------------------------------------------------------------

    def add(
        self,
        agent: A,
        *,
        name: str | None = None,
        identity: Identity | None = None,
        chain: Any = None,
    ) -> A:
        """Add an agent under a unique name; returns it. Its identity (and so its peer id) is
        set at once. Added while the runtime runs, it starts in the background (a failing
        ``on_start`` is logged); use :meth:`spawn` to wait for the start and see errors.

        ``chain`` is the agent's chain client (``agent.chain``) when it has a wallet.
        Raises :class:`AgentError` for a duplicate or invalid name or an agent added twice.
        """
        self._register(agent, name, identity, chain)
        if self._agent_nursery is not None:
            self._agent_nursery.start_soon(self._host_logged, agent)
        return agent

    async def spawn(
        self,
        agent: A,
        *,
        name: str | None = None,
        identity: Identity | None = None,
        chain: Any = None,
    ) -> A:
        """Add an agent to the running runtime and wait until its ``on_start`` finished.

        Raises :class:`AgentStartError` if ``on_start`` raised (the agent is removed again),
        :class:`AgentError` if the runtime is not running or the name is taken.
        """
        nursery = self._agent_nursery
        if nursery is None:
            raise AgentError("the runtime is not running; add() agents before starting it")
        self._register(agent, name, identity, chain)
        try:
            await self._start(nursery, agent)
        except AgentStartError:
            self._agents.pop(agent.name, None)
            raise
        return agent

    async def _start(self, nursery: trio.Nursery, agent: Agent) -> None:
        """Start one agent's host task in ``nursery``; any failure is an AgentStartError."""
        try:
            await nursery.start(self._host, agent)
        except AgentStartError:
            raise
        except Exception as exc:  # e.g. the transport could not be opened (port in use)
            agent._status = Status.STOPPED
            raise AgentStartError(
                f"{agent.name} failed to start: {type(exc).__name__}: {exc}"
            ) from exc

    def _register(
        self, agent: Agent, name: str | None, identity: Identity | None, chain: Any
    ) -> None:
        if getattr(agent, "_runtime", None) is not None:
            raise AgentError(f"{agent.name} was already added to a runtime")
        name = name or agent.name
        if not _NAME_PATTERN.match(name):
            raise AgentError(
                f"agent name {name!r}: use letters, digits, '_', '.', '-' (max 128 chars)"
            )
        if name in self._agents or name in self._peers:
            raise AgentError(f"the name {name!r} is taken in this runtime")
        folder = self.data_dir / name if self.data_dir is not None else None
        if identity is None:
            identity = self._identity_for(name, folder)
        agent._name = name
        agent._runtime = self
        agent._identity = identity
        agent._status = Status.NEW
        agent._generation = 0
        agent._ticking = 0
        agent._bus = None
        agent._work = None
        agent._stop_requested = False
        agent._stop_ran = False
        if chain is not None or getattr(agent, "chain", None) is None:
            agent.chain = chain
        if folder is not None:
            existing = getattr(agent, "_state", None)
            agent._state = State(folder / "state.sqlite")
            if existing is not None:  # values set before adding are kept
                agent._state.update(existing)
        self._agents[name] = agent

    def add_peer(self, name: str, peer_id: PeerId) -> None:
        """Make a remote agent (another process or machine) known by name to :meth:`peer`."""
        if name in self._agents or self._peers.get(name, peer_id) != peer_id:
            raise AgentError(f"the name {name!r} is taken in this runtime")
        self._peers[name] = peer_id

    def peer(self, name: str) -> PeerId:
        """The peer id of an agent of this runtime or a peer added with :meth:`add_peer`.

        Raises :class:`UnknownAgent`.
        """
        agent = self._agents.get(name)
        if agent is not None:
            return agent.peer_id
        try:
            return self._peers[name]
        except KeyError:
            raise UnknownAgent(
                f"no agent or peer named {name!r}; known: {', '.join(sorted(self.names)[:10])}"
            ) from None

    @property
    def names(self) -> list[str]:
        """Every known name: local agents and added peers."""
        return [*self._agents, *self._peers]

    def __getitem__(self, name: str) -> Agent:
        """The local agent with this name; raises :class:`UnknownAgent`."""
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgent(f"no local agent named {name!r}") from None

    def __iter__(self) -> Iterator[Agent]:
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)

    # -- observability -----------------------------------------------------------------------

    def counters(self) -> dict[str, dict[str, int]]:
        """Every agent's counters by name (see :meth:`Agent.counters`)."""
        return {name: agent.counters() for name, agent in self._agents.items()}

    def totals(self) -> dict[str, int]:
        """The counters of all agents summed."""
        total: dict[str, int] = {}
        for agent in self._agents.values():
            for key, value in agent.counters().items():
                total[key] = total.get(key, 0) + value
        return total

    def metrics_text(self, prefix: str = "axl_agent_") -> str:
        """Every agent's counters in the Prometheus text format, for a metrics endpoint: one
        ``counter`` per counter name (dots become underscores, ``_total`` appended), one
        sample per agent labelled ``agent="<name>"``."""
        samples: dict[str, list[tuple[str, int]]] = {}
        for name, counters in self.counters().items():
            for key, value in counters.items():
                metric = prefix + _METRIC_UNSAFE.sub("_", key) + "_total"
                samples.setdefault(metric, []).append((name, value))
        lines = []
        for metric in sorted(samples):
            lines.append(f"# TYPE {metric} counter")
            lines += [f'{metric}{{agent="{name}"}} {value}' for name, value in samples[metric]]
        return "\n".join(lines) + "\n" if lines else ""

    # -- running -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def stop(self) -> None:
        """Ask the runtime to stop every agent gracefully and return from :meth:`run`."""
        self._stop_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every added agent (in the order added), then run until :meth:`stop` or
        cancellation; then stop every agent (``on_stop``, state flush) and return.

        ``task_status.started()`` is called once all agents started, so
        ``await nursery.start(runtime.run)`` returns with a running swarm. Raises
        :class:`AgentStartError` if an agent's ``on_start`` fails at startup (the agents
        already started are stopped first).
        """
        if self._running:
            raise AgentError("this runtime is already running")
        self._running = True
        self._stopped = trio.Event()
        self._base_config = None
        self._config_cache.clear()
        start_error: AgentStartError | None = None
        try:
            async with trio.open_nursery() as services:
                services.start_soon(self._scheduler)
                if self.flush_interval:
                    services.start_soon(self._flusher, self.flush_interval)
                async with trio.open_nursery() as agents:
                    try:
                        for agent in list(self._agents.values()):
                            await self._start(agents, agent)
                    except AgentStartError as exc:
                        start_error = exc
                    else:
                        self._agent_nursery = agents
                        task_status.started()
                        with self._stop_scope:
                            await trio.sleep_forever()
                    self._agent_nursery = None
                    for agent in list(self._agents.values()):
                        agent.stop()
                services.cancel_scope.cancel()
        finally:
            self._agent_nursery = None
            self._running = False
            self._stop_scope = trio.CancelScope()
            self._stopped.set()
        if start_error is not None:
            raise start_error

    async def __aenter__(self) -> AgentRuntime:
        self._context = trio.open_nursery()
        nursery = await self._context.__aenter__()
        try:
            await nursery.start(self.run)
        except BaseException as exc:
            await self._context.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.stop()
        context, self._context = self._context, None
        result: bool | None = await context.__aexit__(exc_type, exc, tb)
        return result

    def serve(self, *, ready: Callable[[], object] | None = None) -> None:
        """Run until Ctrl-C or SIGTERM, then stop every agent gracefully; a second Ctrl-C
        cancels what is left (each ``on_stop`` stays bounded by ``stop_timeout``). Blocking;
        for scripts and ``python -m`` entry points. ``ready()`` is called once every agent
        has started (e.g. to print addresses)."""
        trio.run(self._serve, ready)

    async def _serve(self, ready: Callable[[], object] | None) -> None:
        if threading.current_thread() is not threading.main_thread():  # no signals there
            async with trio.open_nursery() as nursery:
                await nursery.start(self.run)
                if ready is not None:
                    ready()
            return
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.run)
                if ready is not None:
                    ready()

                async def watch() -> None:
                    count = 0
                    async for signum in signals:
                        count += 1
                        logger.info("signal %s: stopping %d agents", signum, len(self._agents))
                        self.stop()
                        if count > 1:
                            nursery.cancel_scope.cancel()

                nursery.start_soon(watch)
                await self._stopped.wait()
                nursery.cancel_scope.cancel()

    # -- one agent's life --------------------------------------------------------------------

    def _identity_for(self, name: str, folder: Path | None) -> Identity:
        if folder is not None:
            return Identity.load_or_create(folder / "identity.key")
        if self._seed is not None:
            seed = self._seed if isinstance(self._seed, bytes) else str(self._seed).encode()
            digest = hashlib.sha256(b"axl-agent-seed\0" + seed + b"\0" + name.encode()).digest()
            return Identity.from_seed(digest)
        return Identity.generate()

    def _open_transport(self, identity: Identity) -> AbstractAsyncContextManager[Transport]:
        if self._transport_factory is not None:
            return self._transport_factory(identity)
        assert self.network is not None
        return self.network.connect(identity.peer_id)

    def _config_for(self, cls: type[Agent]) -> BusConfig:
        config = self._config_cache.get(cls)
        if config is None:
            base = self._bus_config or self._base_config
            if base is None:
                # Memory network: timestamps follow trio's clock, so simulated time (MockClock)
                # moves freshness and replay windows along with timers and latencies.
                base = self._base_config = (
                    BusConfig(clock=_trio_wall_clock()) if self.network else BusConfig()
                )
            changes: dict[str, Any] = {}
            if cls.handler_concurrency is not None:
                changes["handler_concurrency"] = cls.handler_concurrency
            if cls.handler_backlog is not None:
                changes["handler_backlog"] = cls.handler_backlog
            config = dataclasses.replace(base, **changes) if changes else base
            self._config_cache[cls] = config
        return config

    async def _host_logged(self, agent: Agent) -> None:
        try:
            await self._host(agent)
        except Exception:  # a failed start (on_start, transport); logged, the others go on
            agent._status = Status.STOPPED
            logger.exception("agent %s failed", agent.name)
            self._agents.pop(agent.name, None)

    async def _host(
        self, agent: Agent, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """One agent's whole life. This task runs the agent's bus receive loop itself; a
        short-lived task in the agent's work nursery joins topics and calls ``on_start``, and
        :meth:`_request_stop` starts another that calls ``on_stop`` and closes the bus. So an
        idle agent costs one task (see docs/agents.md, "Memory")."""
        if agent._stop_requested:  # stopped before it got going
            agent._status = Status.STOPPED
            task_status.started()
            return
        agent._status = Status.STARTING
        agent._generation += 1
        agent._ticking = 0
        agent._stop_ran = False
        start_error: list[BaseException] = []
        async with self._open_transport(agent.identity) as transport:
            bus = Bus(
                agent.identity,
                transport,
                config=self._config_for(type(agent)),
                registry=self._registry,
            )
            for message_type in agent._axl_handlers:
                bus.on(message_type, agent._dispatch)
            agent._bus = bus
            try:
                async with trio.open_nursery() as work:
                    agent._work = work
                    work.start_soon(self._start_agent, agent, bus, task_status, start_error)
                    await bus.run()  # returns once the bus is closed: stopped, or failed start
                    work.cancel_scope.cancel()
            finally:
                agent._status = Status.STOPPING
                agent._work = None
                with trio.CancelScope(shield=True):
                    if not start_error:  # cancelled from outside: the bus is already closed
                        await self._finish(agent)
                    for key, value in bus.stats.snapshot().items():
                        agent.stats.inc(key, value)
                    agent._bus = None
                agent._status = Status.STOPPED
        if start_error:
            error = start_error[0]
            raise AgentStartError(
                f"{agent.name} failed to start: {type(error).__name__}: {error}"
            ) from error

    async def _start_agent(
        self,
        agent: Agent,
        bus: Bus,
        task_status: trio.TaskStatus[None],
        start_error: list[BaseException],
    ) -> None:
        try:
            for topic in agent.topics:
                await bus.join(topic)
            await agent.on_start()
        except Exception as exc:
            start_error.append(exc)
            await bus.aclose()
            return
        agent._status = Status.RUNNING
        self._schedule(agent)
        task_status.started()
        if agent._stop_requested:
            await self._stop_gracefully(agent, bus)

    def _request_stop(self, agent: Agent) -> None:
        """Stop one agent: ``on_stop`` (bus still open), state flush, then the bus closes."""
        if agent._status in (Status.NEW, Status.STARTING):
            agent._stop_requested = True
        elif agent._status is Status.RUNNING and agent._work is not None and agent._bus:
            agent._status = Status.STOPPING
            agent._work.start_soon(self._stop_gracefully, agent, agent._bus)

    async def _stop_gracefully(self, agent: Agent, bus: Bus) -> None:
        agent._status = Status.STOPPING
        with trio.CancelScope(shield=True):
            await self._finish(agent)
            await bus.aclose()

    async def _finish(self, agent: Agent) -> None:
        """``on_stop`` (at most once, bounded by ``stop_timeout``), then the state flush."""
        if agent._stop_ran:
            return
        agent._stop_ran = True
        if type(agent).on_stop is not Agent.on_stop:
            with trio.move_on_after(self.stop_timeout) as scope:
                try:
                    await agent.on_stop()
                except Exception:
                    agent.stats.inc("stop_errors")
                    agent.log.exception("on_stop() failed")
            if scope.cancelled_caught:
                agent.stats.inc("stop_timeouts")
                agent.log.warning("on_stop() took over %s s and was cancelled", self.stop_timeout)
        self._flush(agent)

    def _flush(self, agent: Agent) -> None:
        state: State | None = getattr(agent, "_state", None)
        if state is None or state.path is None:
            return
        try:
            state.flush()
        except StateError:
            agent.stats.inc("state_errors")
            agent.log.exception("could not flush state")

    async def _flusher(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            for agent in list(self._agents.values()):
                self._flush(agent)
                await trio.lowlevel.checkpoint()

    # -- periodic tasks: one scheduler task for every agent ----------------------------------

    def _schedule(self, agent: Agent) -> None:
        now = trio.current_time()
        for index, spec in enumerate(agent._axl_timers):
            heapq.heappush(
                self._timers,
                (now + spec.first, next(self._timer_order), agent, agent._generation, index),
            )
        if agent._axl_timers:
            self._timers_changed.unpark_all()

    async def _scheduler(self) -> None:
        timers = self._timers
        while True:
            now = trio.current_time()
            while timers and timers[0][0] <= now:
                due, _, agent, generation, index = heapq.heappop(timers)
                if agent._generation != generation or agent._status is not Status.RUNNING:
                    continue
                spec: TimerSpec = agent._axl_timers[index]
                work = agent._work
                if agent._ticking & (1 << index) or work is None:
                    agent.stats.inc("ticks_skipped")
                else:
                    agent._ticking |= 1 << index
                    work.start_soon(agent._tick, index, spec)
                due += spec.interval
                if due <= now:  # fell behind (a long blocking call): skip the missed ticks
                    missed = math.floor((now - due) / spec.interval) + 1
                    agent.stats.inc("ticks_skipped", missed)
                    due += missed * spec.interval
                heapq.heappush(timers, (due, next(self._timer_order), agent, generation, index))
            deadline = timers[0][0] if timers else math.inf
            with trio.move_on_at(deadline):
                await self._timers_changed.park()


def _trio_wall_clock() -> Callable[[], float]:
    """A wall clock that follows trio's clock (so simulated time moves message timestamps,
    freshness and the replay window along with timers)."""
    offset: float | None = None

    def clock() -> float:
        nonlocal offset
        now = trio.current_time()
        if offset is None:
            offset = time.time() - now
        return offset + now

    return clock

"""``AgentRuntime``: runs one agent (a volunteer machine) or thousands (a simulation)."""

from __future__ import annotations

import dataclasses
import logging
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import trio

from axl import (
    BusConfig,
    Identity,
    MemoryNetwork,
    MessageRegistry,
    PeerId,
    Transport,
    default_registry,
)

from ._agent import Agent, Status
from ._errors import AgentError, AgentStartError, UnknownAgent
from ._lifecycle import AgentLifecycle
from ._metrics import prometheus_text
from ._scheduler import TimerScheduler
from ._state import State
from ._wiring import TransportFactory, identity_for, libp2p_transport, trio_wall_clock

__all__ = ["AgentRuntime", "TransportFactory", "libp2p_transport"]

logger = logging.getLogger("agents.runtime")

A = TypeVar("A", bound=Agent)

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class AgentRuntime(AgentLifecycle):
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
        self._timers = TimerScheduler()
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
        return prometheus_text(self.counters(), prefix)

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
                services.start_soon(self._timers.run)
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
        return identity_for(name, folder, self._seed)

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
                    BusConfig(clock=trio_wall_clock()) if self.network else BusConfig()
                )
            changes: dict[str, Any] = {}
            if cls.handler_concurrency is not None:
                changes["handler_concurrency"] = cls.handler_concurrency
            if cls.handler_backlog is not None:
                changes["handler_backlog"] = cls.handler_backlog
            config = dataclasses.replace(base, **changes) if changes else base
            self._config_cache[cls] = config
        return config

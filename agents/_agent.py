"""The base class users subclass: :class:`Agent`."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar, overload

import trio

from axl import BlobStore, Bus, Context, Counters, Identity, Message, PeerId, RemoteError

from ._decorators import HANDLER_ATTR, TIMER_ATTR, TimerSpec, collect
from ._directory_messages import DIRECTORY_TOPIC, Advertise, FindProviders, Provider, Providers
from ._errors import AgentDefinitionError, AgentNotRunning, UnexpectedReply
from ._host import AgentHost
from ._logging import AgentLog, current_message
from ._state import State

R = TypeVar("R", bound=Message)


class Status(enum.Enum):
    """Where an agent is in its life."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Agent:
    """An autonomous agent: subclass it, declare handlers and periodic tasks, run it in an
    :class:`AgentRuntime`.

    Class-level declarations::

        class Pinger(Agent):
            topics = ("lobby",)          # topics joined while running (messages go to @on)
            provides = ("pinging",)      # services advertised to the built-in Directory
            handler_concurrency = 16     # handlers running at once (then a bounded backlog)

            @on(Pong)
            async def pong(self, msg: Pong, ctx: Context) -> None: ...

            @every(1.0)
            async def tick(self) -> None: ...

    Inside an agent: :meth:`send`, :meth:`publish`, :meth:`request`, :meth:`peer` (a name to a
    peer id), :attr:`state` (persisted), :attr:`log` (structured), :attr:`stats` (counters),
    :meth:`start_soon` (background work stopped with the agent) and :attr:`chain` (a chain
    client when the runtime gave the agent a wallet, else None). Override :meth:`on_start`
    and :meth:`on_stop` for setup and teardown.
    """

    topics: ClassVar[tuple[str, ...]] = ()
    """Topics joined while the agent runs; their messages go to the ``@on`` handlers."""
    provides: ClassVar[tuple[str, ...]] = ()
    """Services advertised to the built-in :class:`~agents.Directory` (republished every
    :attr:`advertise_interval` seconds, valid for three intervals)."""
    advertise_interval: ClassVar[float] = 30.0
    handler_concurrency: ClassVar[int | None] = None
    """Handlers of this agent running at once (default: the bus's, 16)."""
    handler_backlog: ClassVar[int | None] = None
    """Messages waiting for a handler slot before new ones are shed (default: the bus's)."""

    _axl_handlers: ClassVar[dict[type[Message], str]] = {}
    _axl_timers: ClassVar[tuple[TimerSpec, ...]] = ()

    __slots__ = (
        "_bus",
        "_generation",
        "_identity",
        "_log",
        "_name",
        "_runtime",
        "_state",
        "_stats",
        "_status",
        "_stop_ran",
        "_stop_requested",
        "_ticking",
        "_work",
        "blob_store",
        "chain",
    )

    _bus: Bus | None
    _generation: int
    _identity: Identity | None
    _log: AgentLog | None
    _name: str | None
    _runtime: AgentHost | None
    _state: State | None
    _stats: Counters | None
    _status: Status
    _stop_requested: bool
    _stop_ran: bool
    _ticking: int
    _work: trio.Nursery | None
    chain: Any
    """The agent's chain client (e.g. ``coordination.Chain``) when it has a wallet, else None."""
    blob_store: BlobStore | None
    """The agent's blob store (set before it starts): its bus then serves and fetches blobs
    (``bus.offer``/``bus.fetch``, docs/blobs.md); None: no bulk data."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attribute in ("topics", "provides"):
            value = getattr(cls, attribute)
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise AgentDefinitionError(
                    f"{cls.__name__}.{attribute} is a tuple of names, e.g. ({value!r},)"
                )
        inherited_handlers: dict[type[Message], str] = {}
        inherited_timers: dict[str, TimerSpec] = {}
        for base in reversed(cls.__mro__[1:]):
            if "_axl_handlers" in vars(base):
                inherited_handlers.update(vars(base)["_axl_handlers"])
                inherited_timers.update({t.name: t for t in vars(base)["_axl_timers"]})
        handlers, timers = collect(cls, inherited_handlers, inherited_timers)
        if cls.provides:
            if not cls.advertise_interval > 0:
                raise AgentDefinitionError(f"{cls.__name__}.advertise_interval must be > 0")
            timers["_advertise"] = TimerSpec("_advertise", cls.advertise_interval, 0.0)
        else:
            timers.pop("_advertise", None)
        for spec in timers.values():
            if not callable(getattr(cls, spec.name, None)):
                raise AgentDefinitionError(f"{cls.__name__}.{spec.name} is not a method")
        if cls.__module__ != __name__:
            own = {
                name
                for name, value in vars(cls).items()
                if hasattr(value, HANDLER_ATTR) or hasattr(value, TIMER_ATTR)
            }
            for name in own & set(vars(Agent)):
                raise AgentDefinitionError(
                    f"{cls.__name__}.{name}() would replace Agent.{name}; rename the handler"
                )
        cls._axl_handlers = handlers
        cls._axl_timers = tuple(timers.values())

    def __init__(self, name: str | None = None) -> None:
        """``name`` identifies the agent in its runtime (default: the class name, lower case).

        Subclasses with their own ``__init__`` should call ``super().__init__(name)``.
        """
        self._name = name
        self.chain: Any = None
        self.blob_store = None

    # -- identity ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The agent's name in its runtime."""
        name = getattr(self, "_name", None)
        return name if name is not None else type(self).__name__.lower()

    @property
    def identity(self) -> Identity:
        """The agent's key pair (set when added to a runtime)."""
        identity: Identity | None = getattr(self, "_identity", None)
        if identity is None:
            raise AgentNotRunning(f"{self.name} has no identity until added to a runtime")
        return identity

    @property
    def peer_id(self) -> PeerId:
        """The agent's peer id on the bus."""
        return self.identity.peer_id

    @property
    def runtime(self) -> AgentHost:
        """The runtime the agent was added to (an :class:`~agents.AgentRuntime`)."""
        runtime: AgentHost | None = getattr(self, "_runtime", None)
        if runtime is None:
            raise AgentNotRunning(f"{self.name} was not added to a runtime")
        return runtime

    @property
    def status(self) -> Status:
        return getattr(self, "_status", Status.NEW)

    @property
    def running(self) -> bool:
        """True from the end of :meth:`on_start` until the agent starts stopping."""
        return self.status is Status.RUNNING

    @property
    def bus(self) -> Bus:
        """The agent's bus while it runs; raises :class:`AgentNotRunning` otherwise."""
        bus: Bus | None = getattr(self, "_bus", None)
        if bus is None:
            raise AgentNotRunning(f"{self.name} is not running")
        return bus

    def peer(self, name: str) -> PeerId:
        """The peer id behind a runtime name (an agent or a peer added with ``add_peer``).

        Raises :class:`UnknownAgent`.
        """
        return self.runtime.peer(name)

    # -- observability -----------------------------------------------------------------------

    @property
    def log(self) -> AgentLog:
        """A logger whose records carry the agent name, peer id and current message id."""
        log: AgentLog | None = getattr(self, "_log", None)
        if log is None:
            peer = str(self.peer_id) if getattr(self, "_identity", None) else ""
            log = self._log = AgentLog(self.name, peer)
        return log

    @property
    def stats(self) -> Counters:
        """The agent's own counters (``handled``, ``ticks``, ``tick_errors``, ...)."""
        stats: Counters | None = getattr(self, "_stats", None)
        if stats is None:
            stats = self._stats = Counters()
        return stats

    def counters(self) -> dict[str, int]:
        """Every counter of the agent: its bus's (``received``, ``sent``, ``published``,
        ``requests``, ``replies``, ``handler_errors``, ``rejected.*``, ``dropped.*``) and its
        own. Survives stops; ready to export."""
        values = self.stats.snapshot()
        bus: Bus | None = getattr(self, "_bus", None)
        if bus is not None:
            for key, value in bus.stats.snapshot().items():
                values[key] = values.get(key, 0) + value
        return values

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """Persisted key/value state (JSON values), flushed periodically and on stop.

        Memory-only when the runtime has no ``data_dir``.
        """
        state: State | None = getattr(self, "_state", None)
        if state is None:
            state = self._state = State(None)
        return state

    # -- lifecycle hooks ---------------------------------------------------------------------

    async def on_start(self) -> None:
        """Called once the bus runs and the class's topics are joined; periodic tasks are
        scheduled after it returns (handlers may already receive messages meanwhile). Raising
        here aborts the start (:class:`AgentStartError`)."""

    async def on_stop(self) -> None:
        """Called once when the agent stops. On a graceful stop (:meth:`stop`, the runtime's
        ``stop()``, the end of ``async with runtime``, Ctrl-C under ``serve()``) the bus still
        runs, so it can send goodbyes; no new periodic runs start, and runs or background
        tasks still going are cancelled after it. If the runtime is cancelled from outside
        instead, it runs after the bus closed. Bounded by the runtime's ``stop_timeout``;
        state is flushed afterwards."""

    # -- messaging ---------------------------------------------------------------------------

    def _to_peer(self, to: PeerId | str) -> PeerId:
        return self.runtime.peer(to) if isinstance(to, str) else to

    async def send(self, to: PeerId | str, message: Message) -> None:
        """Send a direct message to a peer id or a runtime name.

        Raises :class:`axl.PeerUnreachable`, :class:`UnknownAgent`, :class:`AgentNotRunning`.
        """
        await self.bus.send(self._to_peer(to), message)

    async def publish(self, topic: str, message: Message) -> None:
        """Publish on a topic (at-most-once to its current members)."""
        await self.bus.publish(topic, message)

    @overload
    async def request(
        self, to: PeerId | str, message: Message, *, reply: type[R], timeout: float | None = ...
    ) -> R: ...

    @overload
    async def request(
        self, to: PeerId | str, message: Message, *, reply: None = ..., timeout: float | None = ...
    ) -> Message: ...

    async def request(
        self,
        to: PeerId | str,
        message: Message,
        *,
        reply: type[Message] | None = None,
        timeout: float | None = None,
    ) -> Message:
        """Send a request and return the reply; with ``reply=Type`` the reply is checked to be
        of that type (and typed so for the type checker).

        Raises :class:`axl.RequestTimeout`, :class:`axl.RemoteError` (the peer's handler failed
        or refused), :class:`axl.PeerUnreachable`, :class:`UnexpectedReply`.
        """
        answer = await self.bus.request(self._to_peer(to), message, timeout=timeout)
        if reply is not None and not isinstance(answer, reply):
            raise UnexpectedReply(
                f"{type(message).__name__} got a {type(answer).__name__} reply, "
                f"expected {reply.__name__}"
            )
        return answer

    async def find(
        self,
        service: str,
        *,
        directory: PeerId | str = "directory",
        timeout: float | None = None,
    ) -> list[Provider]:
        """Ask the built-in :class:`~agents.Directory` who offers ``service`` (live providers,
        most recently renewed first; empty if none). ``directory`` is its runtime name or peer
        id. Raises what :meth:`request` raises, and :class:`UnknownAgent`."""
        answer = await self.request(
            directory, FindProviders(service=service), reply=Providers, timeout=timeout
        )
        return answer.providers

    async def join(self, topic: str) -> None:
        """Join a topic while running (class-level ``topics`` are joined automatically)."""
        await self.bus.join(topic)

    async def leave(self, topic: str) -> None:
        """Leave a topic joined with :meth:`join`."""
        await self.bus.leave(topic)

    def start_soon(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``function(*args)`` in the background until it returns or the agent stops.

        An exception is logged and counted (``task_errors``), never kills the agent.
        """
        work: trio.Nursery | None = getattr(self, "_work", None)
        if work is None:
            raise AgentNotRunning(f"{self.name} is not running")
        work.start_soon(self._guarded, function, args)

    def stop(self) -> None:
        """Ask the agent to stop (gracefully: ``on_stop``, state flush, bus closed)."""
        runtime: AgentHost | None = getattr(self, "_runtime", None)
        if runtime is not None:
            runtime._request_stop(self)

    # -- internals: called by the runtime and the bus ----------------------------------------

    async def _guarded(
        self, function: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        try:
            await function(*args)
        except Exception:
            self.stats.inc("task_errors")
            self.log.exception("background task %s failed", getattr(function, "__name__", "?"))

    async def _dispatch(self, message: Message, ctx: Context) -> Message | None:
        method = getattr(self, self._axl_handlers[type(message)])
        token = current_message.set((ctx.message_id.hex(), message.axl_tag))
        self.stats.inc("handled")
        try:
            result: Message | None = await method(message, ctx)
            return result
        except RemoteError:
            raise
        except Exception as exc:
            self.log.exception(
                "%s() failed on %s from %s",
                self._axl_handlers[type(message)],
                type(message).__name__,
                ctx.sender.short(),
                extra={"sender": str(ctx.sender)},
            )
            raise RemoteError("handler_error", f"{type(exc).__name__}: {exc}"[:500]) from exc
        finally:
            current_message.reset(token)

    async def _tick(self, index: int, spec: TimerSpec) -> None:
        self.stats.inc("ticks")
        try:
            await getattr(self, spec.name)()
        except Exception:
            self.stats.inc("tick_errors")
            self.log.exception("periodic %s() failed", spec.name)
        finally:
            self._ticking &= ~(1 << index)

    async def _advertise(self) -> None:
        await self.publish(
            DIRECTORY_TOPIC,
            Advertise(
                name=self.name, services=list(self.provides), ttl=3 * self.advertise_interval
            ),
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.status.value}>"

"""``@on`` and ``@every``: declare an agent's handlers and periodic tasks on its class."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from axl import Context, Message, MessageTypeError

from ._errors import AgentDefinitionError

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S")
M1 = TypeVar("M1", bound=Message)
M2 = TypeVar("M2", bound=Message)
M3 = TypeVar("M3", bound=Message)
R = TypeVar("R", bound=Message | None)

# What mypy checks on a handler: its message parameter accepts the declared types, and it
# returns a Message (the reply) or None.
_Handler = Callable[[S, M1, Context], Awaitable[R]]

HANDLER_ATTR = "__axl_on__"
TIMER_ATTR = "__axl_every__"


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """A periodic task: run method ``name`` every ``interval`` seconds, first after ``first``."""

    name: str
    interval: float
    first: float


@overload
def on(message_type: type[M1], /) -> Callable[[_Handler[S, M1, R]], _Handler[S, M1, R]]: ...


@overload
def on(
    first: type[M1], second: type[M2], /
) -> Callable[[_Handler[S, M1 | M2, R]], _Handler[S, M1 | M2, R]]: ...


@overload
def on(
    first: type[M1], second: type[M2], third: type[M3], /
) -> Callable[[_Handler[S, M1 | M2 | M3, R]], _Handler[S, M1 | M2 | M3, R]]: ...


@overload
def on(*message_types: type[Message]) -> Callable[[F], F]: ...


def on(*message_types: type[Message]) -> Callable[[F], F]:
    """Mark an ``async def handler(self, msg, ctx)`` method as the handler of ``message_types``.

    The handler gets each message of those types sent to the agent directly or published on a
    topic it joined, and an :class:`axl.Context` (``ctx.sender``, ``ctx.topic``,
    ``ctx.message_id``, ``ctx.is_request``). When the message was a request, the handler's
    return value is the reply; raise :class:`axl.RemoteError` to reply with a chosen error
    code. Any other exception is logged, counted and answered with a ``handler_error`` reply;
    the agent keeps running. Raises :class:`AgentDefinitionError` for a type without a tag.

    Type checkers verify that the handler's message parameter accepts the declared types and
    that it returns a message or None; at class creation, a handler that is not ``async def``
    or does not take ``(self, msg, ctx)`` raises :class:`AgentDefinitionError`.
    """
    if not message_types:
        raise AgentDefinitionError("@on needs at least one message type")
    for message_type in message_types:
        if not (isinstance(message_type, type) and issubclass(message_type, Message)):
            raise AgentDefinitionError(f"@on takes Message subclasses, got {message_type!r}")
        if not message_type.axl_tag:
            raise AgentDefinitionError(
                f"{message_type.__name__} has no tag; declare it with "
                f"class {message_type.__name__}(Message, tag='area.name')"
            )

    def mark(function: F) -> F:
        _check_signature(function, "@on", ("msg", "ctx"))
        existing: tuple[type[Message], ...] = getattr(function, HANDLER_ATTR, ())
        setattr(function, HANDLER_ATTR, existing + message_types)
        return function

    return mark


def every(
    seconds: float, *, first: float | None = None
) -> Callable[[Callable[[S], Awaitable[None]]], Callable[[S], Awaitable[None]]]:
    """Run an ``async def tick(self)`` method every ``seconds`` while the agent runs.

    The first run is ``first`` seconds after the agent started (default: ``seconds``). Runs of
    one periodic method never overlap: when a run is still going at the next due time, that
    tick is skipped and counted (``ticks_skipped``). An exception is logged and counted
    (``tick_errors``); the schedule goes on. Time is trio's clock, so
    ``trio.testing.MockClock`` drives it in tests. A method that is not ``async def`` or takes
    a parameter besides ``self`` raises :class:`AgentDefinitionError` at class creation.
    """
    if not seconds > 0:
        raise AgentDefinitionError(f"@every needs a positive interval, got {seconds!r}")
    if first is not None and first < 0:
        raise AgentDefinitionError(f"@every's first delay must be >= 0, got {first!r}")

    def mark(function: Callable[[S], Awaitable[None]]) -> Callable[[S], Awaitable[None]]:
        _check_signature(function, "@every", ())
        setattr(function, TIMER_ATTR, (float(seconds), None if first is None else float(first)))
        return function

    return mark


def _check_signature(function: Callable[..., Any], decorator: str, args: tuple[str, ...]) -> None:
    """Raise :class:`AgentDefinitionError` unless ``function`` is an ``async def`` method that
    can be called with ``self`` plus exactly ``len(args)`` positional arguments."""
    name = getattr(function, "__qualname__", repr(function)).rsplit("<locals>.", 1)[-1]
    if not callable(function):
        raise AgentDefinitionError(f"{decorator} decorates a method, got {function!r}")
    if not (
        inspect.iscoroutinefunction(function)
        or inspect.iscoroutinefunction(inspect.unwrap(function))
    ):
        raise AgentDefinitionError(f"{decorator}: {name}() must be declared with async def")
    expected = f"({', '.join(('self', *args))})"
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # pragma: no cover - builtins have no signature
        return
    try:
        signature.bind(object(), *args)
    except TypeError:
        got = ", ".join(signature.parameters)
        raise AgentDefinitionError(f"{decorator}: {name}({got}) must take {expected}") from None


def collect(
    cls: type, bases_handlers: dict[type[Message], str], bases_timers: dict[str, TimerSpec]
) -> tuple[dict[type[Message], str], dict[str, TimerSpec]]:
    """The handler table and timers of ``cls``: inherited ones, then its own.

    Handlers and timers are looked up by method name, so a subclass that overrides a handler
    method (decorated or not) changes what runs.
    """
    handlers = dict(bases_handlers)
    timers = dict(bases_timers)
    own: dict[type[Message], str] = {}
    for name, value in vars(cls).items():
        types: tuple[type[Message], ...] = getattr(value, HANDLER_ATTR, ())
        for message_type in types:
            if message_type in own:
                raise AgentDefinitionError(
                    f"{cls.__name__}: both {own[message_type]}() and {name}() handle "
                    f"{message_type.__name__}; one handler per message type"
                )
            own[message_type] = name
        timer = getattr(value, TIMER_ATTR, None)
        if timer is not None:
            interval, first = timer
            timers[name] = TimerSpec(name, interval, interval if first is None else first)
    handlers.update(own)
    for message_type in handlers:
        if not message_type.axl_tag:  # pragma: no cover - checked by @on
            raise MessageTypeError(f"{message_type.__name__} has no tag")
    return handlers, timers

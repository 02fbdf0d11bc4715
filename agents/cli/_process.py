"""A node process's life: start the runtime, serve the status (and metrics) endpoint, warn
once when no bootstrap peer answers, and stop gracefully on Ctrl-C or SIGTERM (state flushed).
Failures at start-up become one :class:`CliError` line."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from .._agent import Agent
from .._errors import AgentStartError
from .._runtime import AgentRuntime
from ._datadir import STATUS_URL_FILE
from ._errors import FAILURE, CliError
from ._observe import NodeStatus, connected_peers
from ._status import serve_http, status_app

logger = logging.getLogger("agents.cli")


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Where the local endpoints listen: ``status_port`` (0 = any free port, None = off) and
    the opt-in ``metrics_port``, both on ``host`` (loopback by default)."""

    host: str = "127.0.0.1"
    status_port: int | None = 0
    metrics_port: int | None = None


Announce = Callable[[Agent, dict[str, str]], None]


def run_node(
    runtime: AgentRuntime,
    agent: Agent,
    *,
    status: NodeStatus,
    http: HttpOptions,
    data_dir: Path | None,
    bootstrap: Sequence[str],
    announce: Announce,
    bootstrap_grace: float = 10.0,
) -> None:
    """Run until Ctrl-C/SIGTERM (a second one cancels what is left). Raises :class:`CliError`
    when the agent cannot start (its transport, ``on_start``) or an endpoint cannot bind."""
    deferred: list[int] = []  # SIGTERM between here and the signal receiver in _main
    previous = _on_sigterm(lambda signum, _: deferred.append(signum))
    try:
        args = (runtime, agent, status, http, data_dir, list(bootstrap), announce)
        trio.run(_main, *args, bootstrap_grace, deferred)
    except BaseExceptionGroup as group:
        raise _one_error(group) from None
    except AgentStartError as exc:
        raise CliError(_first_line(exc), FAILURE) from None
    finally:
        _on_sigterm(previous)
        if data_dir is not None:
            (data_dir / STATUS_URL_FILE).unlink(missing_ok=True)


def _on_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM; the previous one (None off the main thread)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: no signals there
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _one_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first CliError or AgentStartError inside (nested) groups, as a CliError; else the
    group itself (a real bug: its traceback is worth seeing)."""
    for exc in _leaves(group):
        if isinstance(exc, CliError):
            return exc
        if isinstance(exc, AgentStartError):
            return CliError(_first_line(exc), FAILURE)
        if isinstance(exc, KeyboardInterrupt):
            return exc
    return group


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def _main(
    runtime: AgentRuntime,
    agent: Agent,
    status: NodeStatus,
    http: HttpOptions,
    data_dir: Path | None,
    bootstrap: list[str],
    announce: Announce,
    bootstrap_grace: float,
    deferred: list[int],
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        if deferred:
            logger.info("signal %s during start-up: stopping", deferred[0])
            return
        async with trio.open_nursery() as nursery:
            started = trio.Event()

            async def stop_on_signals() -> None:
                """Stop gracefully once running; during start-up, or on a second signal,
                cancel what is left (nothing ran yet that needs a flush)."""
                async for signum in signals:
                    if started.is_set() and not runtime_stopping.is_set():
                        logger.info("signal %s: stopping (again to cancel what is left)", signum)
                        runtime_stopping.set()
                        runtime.stop()
                    else:
                        logger.info("signal %s: cancelling", signum)
                        nursery.cancel_scope.cancel()

            async def run_runtime(*, task_status: trio.TaskStatus[None]) -> None:
                await runtime.run(task_status=task_status)
                nursery.cancel_scope.cancel()  # stopped: the endpoints go too

            runtime_stopping = trio.Event()
            nursery.start_soon(stop_on_signals)
            await nursery.start(run_runtime)
            urls: dict[str, str] = {}
            if http.status_port is not None:
                app = status_app(status.snapshot)
                urls["status"] = await nursery.start(serve_http, app, http.host, http.status_port)
                if data_dir is not None:
                    (data_dir / STATUS_URL_FILE).write_text(urls["status"] + "\n")
            if http.metrics_port is not None:
                from ._prometheus import metrics_registry, metrics_text

                registry = metrics_registry(status)
                app = status_app(status.snapshot, lambda: metrics_text(registry))
                base = await nursery.start(serve_http, app, http.host, http.metrics_port)
                urls["metrics"] = base + "/metrics"
            announce(agent, urls)
            started.set()
            nursery.start_soon(status.refresh_chain)
            if bootstrap:
                nursery.start_soon(
                    watch_bootstrap, agent, bootstrap, bootstrap_grace, runtime_stopping
                )


async def watch_bootstrap(
    agent: Agent, bootstrap: Sequence[str], grace: float, stopping: trio.Event | None = None
) -> None:
    """Log one warning when no peer is connected ``grace`` seconds after start (the transport
    keeps re-dialling the bootstrap peers), then one per minute while that lasts, and one line
    when peers are reached. Silent once ``stopping`` is set: a node that is stopping loses its
    peers (in a swarm stopped at once, they go first), which is not a network problem."""
    await trio.sleep(grace)
    waited = grace
    missing = False
    while stopping is None or not stopping.is_set():
        connected = _connected(agent)
        if connected == 0:
            missing = True
            logger.warning(
                "no bootstrap peer reachable after %.0f s (%s); still retrying",
                waited,
                ", ".join(bootstrap),
            )
        elif missing:
            missing = False
            logger.warning("reached the network: %d peers connected", connected)
        await trio.sleep(60.0 if missing else 5.0)
        waited += 60.0 if missing else 5.0


def _connected(agent: Agent) -> int:
    transport = getattr(getattr(agent, "_bus", None), "transport", None)
    return len(connected_peers(transport))

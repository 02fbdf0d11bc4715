"""One agent's life in its runtime: start (bus, topics, ``on_start``), graceful stop
(``on_stop``, state flush, bus closed) and failure handling."""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager

import trio

from axl import Bus, BusConfig, Identity, MessageRegistry, Transport

from ._agent import Agent, Status
from ._errors import AgentStartError, StateError
from ._scheduler import TimerScheduler
from ._state import State

logger = logging.getLogger("agents.runtime")


class AgentLifecycle:
    """The runtime's part that hosts single agents (a mixin of :class:`~agents.AgentRuntime`,
    which provides the attributes declared here)."""

    stop_timeout: float
    _agents: dict[str, Agent]
    _registry: MessageRegistry
    _timers: TimerScheduler

    def _open_transport(self, identity: Identity) -> AbstractAsyncContextManager[Transport]:
        raise NotImplementedError

    def _config_for(self, cls: type[Agent]) -> BusConfig:
        raise NotImplementedError

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
                blobs=getattr(agent, "blob_store", None),
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
        self._timers.schedule(agent)
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

"""Periodic tasks: one scheduler task drives every agent's ``@every`` timers."""

from __future__ import annotations

import heapq
import itertools
import math

import trio

from ._agent import Agent, Status


class TimerScheduler:
    """A heap of (due time, agent, timer) entries served by one task (:meth:`run`).

    A timer whose previous run is still going is skipped (``ticks_skipped``); a scheduler
    that fell behind skips the missed ticks instead of bursting. Entries of an agent that
    stopped (or restarted: a new generation) are dropped when they come due.
    """

    def __init__(self) -> None:
        self._timers: list[tuple[float, int, Agent, int, int]] = []
        self._order = itertools.count()
        self._changed = trio.lowlevel.ParkingLot()

    def schedule(self, agent: Agent) -> None:
        """Schedule every timer of a freshly started agent (first run after its ``first``)."""
        now = trio.current_time()
        for index, spec in enumerate(agent._axl_timers):
            heapq.heappush(
                self._timers,
                (now + spec.first, next(self._order), agent, agent._generation, index),
            )
        if agent._axl_timers:
            self._changed.unpark_all()

    async def run(self) -> None:
        """Start due ticks in their agents' work nurseries, forever."""
        timers = self._timers
        while True:
            now = trio.current_time()
            while timers and timers[0][0] <= now:
                due, _, agent, generation, index = heapq.heappop(timers)
                if agent._generation != generation or agent._status is not Status.RUNNING:
                    continue
                spec = agent._axl_timers[index]
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
                heapq.heappush(timers, (due, next(self._order), agent, generation, index))
            deadline = timers[0][0] if timers else math.inf
            with trio.move_on_at(deadline):
                await self._changed.park()

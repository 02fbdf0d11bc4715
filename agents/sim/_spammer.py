"""The spammer: a bus-level adversary, not a market role. It floods random agents with invalid
frames: random bytes, and signed messages whose signature its transport breaks on the way
out (see ``_netstats.CountingTransport``)."""

from __future__ import annotations

import trio

from agents import Agent
from axl import PeerUnreachable

from ._messages import Spam
from ._world import World


class Spammer(Agent):
    def __init__(self, world: World, name: str) -> None:
        super().__init__(name)
        self.world = world
        self.rng = world.rng(name)

    async def on_start(self) -> None:
        if self.world.scenario.spam_rate > 0:
            self.start_soon(self._flood)

    async def _flood(self) -> None:
        world = self.world
        names = [n for n in world.members if world.members[n].role != "spammer"]
        interval = 1.0 / world.scenario.spam_rate
        n = 0
        while True:
            await trio.sleep(interval)
            n += 1
            target = world.members[self.rng.choice(names)].peer
            if target is None:
                continue
            try:
                if n % 2:
                    await self.bus.transport.send(
                        target, self.rng.randbytes(self.rng.randint(1, 300))
                    )
                else:
                    await self.send(target, Spam(n=n))
            except PeerUnreachable:
                continue
            world.journal.spam_sent += 1

"""The spammer: a bus-level adversary, not a market role. It floods random agents with invalid
frames: random bytes, and signed messages whose signature its transport breaks on the way
out (see ``_netstats.CountingTransport``). :class:`BusSpammer` is the flood itself, whatever
the network; :class:`Spammer` the in-process swarm's (targets and count from the world)."""

from __future__ import annotations

import random

import trio

from agents import Agent
from axl import PeerId, PeerUnreachable

from ._messages import Spam
from ._world import World


class BusSpammer(Agent):
    """Every ``1 / rate`` seconds, sends one invalid frame to the peer :meth:`pick` draws
    (none: skipped): odd ones random bytes on the raw
    transport, even ones a :class:`Spam` message (its transport is expected to break the
    signature). :attr:`sent` counts the frames sent."""

    def __init__(self, name: str, rate: float, rng: random.Random) -> None:
        super().__init__(name)
        self.rate = rate
        self.rng = rng
        self.sent = 0

    def pick(self) -> PeerId | None:
        """The next victim, drawn from :attr:`rng`."""
        raise NotImplementedError

    def spammed(self) -> None:
        """One invalid frame went out."""
        self.sent += 1

    async def on_start(self) -> None:
        if self.rate > 0:
            self.start_soon(self._flood)

    async def _flood(self) -> None:
        interval = 1.0 / self.rate
        n = 0
        while True:
            await trio.sleep(interval)
            n += 1
            target = self.pick()
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
            self.spammed()


class Spammer(BusSpammer):
    """The in-process swarm's spammer: floods any non-spammer member; counts in the journal."""

    def __init__(self, world: World, name: str) -> None:
        super().__init__(name, world.scenario.spam_rate, world.rng(name))
        self.world = world
        self._names = [n for n in world.members if world.members[n].role != "spammer"]

    def pick(self) -> PeerId | None:
        return self.world.members[self.rng.choice(self._names)].peer

    def spammed(self) -> None:
        super().spammed()
        self.world.journal.spam_sent += 1

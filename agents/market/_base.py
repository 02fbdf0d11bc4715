"""What every market role shares: the chain adapter, the market topic, a narrator, and the
answers to the referee's Verde queries from the role's own run of a disputed job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import trio

from axl import Context, Message, RemoteError
from compute import BisectionQuery, IntervalQuery, LeafQuery, OpQuery, Party, StepQuery
from coordination import Chain

from .._agent import Agent
from .._decorators import on
from .._errors import AgentNotRunning
from ._chain import MarketChain
from ._messages import MARKET_TOPIC

TOKEN = 10**18
"""Base units per AI token."""

T = TypeVar("T")

Narrator = Callable[[str, str], None]
"""Receives ``(who, text)`` for each step of the market's story (e.g. print it)."""

QUERIES = (BisectionQuery, LeafQuery, IntervalQuery, StepQuery, OpQuery)
Query = BisectionQuery | LeafQuery | IntervalQuery | StepQuery | OpQuery


def game_id(job_id: int) -> str:
    """The Verde game id of the dispute on ``job_id``."""
    return f"job-{job_id}"


class MarketAgent(Agent):
    """Base of the market roles: joins :data:`MARKET_TOPIC`, wraps the runtime-given chain
    client (``agent.chain``) in a :class:`MarketChain` at start, binds the agent's peer id to
    its account on chain (so others can check who is who) and narrates to ``narrator``."""

    topics: ClassVar[tuple[str, ...]] = (MARKET_TOPIC,)
    inline_compute: ClassVar[bool] = False
    """Run training, re-runs and game answers inline on the event loop instead of in worker
    threads (simulations under trio's mock clock: a worker thread would let virtual time jump
    while it runs, and thread timing would make runs differ)."""

    def __init__(self, name: str | None = None, *, narrator: Narrator | None = None) -> None:
        super().__init__(name)
        self.narrator = narrator
        self._market: MarketChain | None = None

    async def compute(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work of the role (``fn(*args)``: training, a re-run, a game answer) in a
        worker thread, or inline with :attr:`inline_compute`. Override to model compute time
        (e.g. sleep in simulated time after the work)."""
        if self.inline_compute:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args)

    @property
    def market(self) -> MarketChain:
        """The chain adapter; raises :class:`AgentNotRunning` before the start."""
        if self._market is None:
            raise AgentNotRunning(f"{self.name} has no chain adapter until it starts")
        return self._market

    async def on_start(self) -> None:
        if not isinstance(self.chain, Chain):
            raise AgentNotRunning(f"{self.name} needs a chain client: runtime.add(..., chain=)")
        self._market = MarketChain(self.chain)
        await self.market.ensure_bound(self.identity)

    def busy(self) -> bool:
        """Whether the role has work under way that needs no chain time to progress (used to
        tell when a local market is quiet; roles override it)."""
        return False

    def say(self, text: str) -> None:
        """Tell the story (to the narrator, else the agent's log at debug level)."""
        if self.narrator is not None:
            self.narrator(self.name, text)
        else:
            self.log.debug(text)


class GameParty(MarketAgent):
    """A role that may be a side of a dispute: answers the referee's Verde queries from its
    own :class:`compute.Party` of that job (kept in :attr:`parties` by game id). Queries of an
    unknown game, or ones the party cannot answer, get a ``no_answer`` error."""

    def __init__(self, name: str | None = None, *, narrator: Narrator | None = None) -> None:
        super().__init__(name, narrator=narrator)
        self.parties: dict[str, Party] = {}
        self._party_locks: dict[str, trio.Lock] = {}

    @on(*QUERIES)
    async def game_query(self, message: Query, ctx: Context) -> Message:
        party = self.parties.get(message.game_id)
        if party is None:
            raise RemoteError("no_answer", f"no game {message.game_id[:64]!r} here")
        lock = self._party_locks.setdefault(message.game_id, trio.Lock())
        async with lock:
            try:
                reply = await self.compute(party.respond, message)
            except Exception as exc:  # a malformed query (index out of range, ...)
                raise RemoteError("no_answer", f"{type(exc).__name__}") from exc
        if reply is None:
            raise RemoteError("no_answer", f"no answer for {message.axl_tag}")
        return reply

    def forget(self, job_id: int) -> None:
        """Drop what a dispute on ``job_id`` would need (after the window or the verdict)."""
        self.parties.pop(game_id(job_id), None)
        self._party_locks.pop(game_id(job_id), None)

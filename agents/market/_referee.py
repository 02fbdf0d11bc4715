"""The built-in :class:`Referee` role: plays the Verde bisection game of every dispute between
the parties the chain names, over the roots the chain holds, and anchors the verdict."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

import trio

from axl import Context, Message, PeerId, RemoteError
from compute import ChallengeOpened, Deadline, TaskSpec, handle, open_game
from compute import Verdict as GameVerdict
from coordination import CoordinationError

from .._decorators import on
from .._errors import AgentError
from ._base import MarketAgent, Narrator, game_id
from ._chain import DisputeRecord, spec_hash
from ._messages import MARKET_TOPIC, Challenge, Outcome, Verdict


@dataclass(frozen=True)
class RefereeConfig:
    """A referee's settings (defaults in brackets): ``query_timeout`` per Verde query [30 s];
    ``game_timeout`` for a whole game, after which the parties that owe a reply lose [600 s];
    ``challenge_timeout``: a challenger that challenged on chain but sent no
    :class:`Challenge` within it loses [120 s]; ``poll_interval`` between looks at the
    chain's events [0.5 s]. The referee's account must hold the market's resolver role."""

    query_timeout: float = 30.0
    game_timeout: float = 600.0
    challenge_timeout: float = 120.0
    poll_interval: float = 0.5


def outcome_of(verdict: GameVerdict) -> Outcome:
    """The market outcome of a game verdict: the solver (side a) wins, or "no dispute" (equal
    roots), or the challenger wins (including when both failed to answer)."""
    if verdict.winner == "a":
        return "solver_wins"
    if verdict.winner is None and not verdict.losers:
        return "no_dispute"
    return "challenger_wins"


class Referee(MarketAgent):
    """Resolves disputes: see :class:`RefereeConfig`. The parties, the solver's root and the
    spec hash come from the chain's job record; a :class:`Challenge` is accepted only from the
    peer bound on chain to the job's challenger, with a spec that hashes to the chain's.
    Counters: ``market.disputes``, ``market.resolved``, ``market.challenges_ignored``."""

    def __init__(
        self,
        config: RefereeConfig | None = None,
        name: str | None = "referee",
        *,
        narrator: Narrator | None = None,
    ) -> None:
        super().__init__(name, narrator=narrator)
        self.config = config or RefereeConfig()
        self.verdicts: dict[int, Verdict] = {}
        self._open: dict[int, float] = {}  # challenged on chain, no Challenge yet: since
        self._playing: set[int] = set()

    def busy(self) -> bool:
        """Whether a dispute is open on chain or being played."""
        return bool(self._open or self._playing - set(self.verdicts))

    async def on_start(self) -> None:
        await super().on_start()
        self._cursor = self.market.cursor()
        self.start_soon(self._watch)

    async def _watch(self) -> None:
        """Notice challenges on chain; resolve those whose challenger never made its case."""
        while True:
            for event in await self.market.poll(self._cursor):
                job_id = int(event["jobId"]) if event.name == "Challenged" else 0
                if job_id and job_id not in self._playing:
                    self._open.setdefault(job_id, trio.current_time())
            now = trio.current_time()
            for job_id, since in list(self._open.items()):
                if job_id not in self._playing and now - since > self.config.challenge_timeout:
                    del self._open[job_id]
                    self._playing.add(job_id)
                    await self._anchor(job_id, "timeout", "no case made by the challenger", 0)
            await trio.sleep(self.config.poll_interval)

    @on(Challenge)
    async def challenge(self, message: Challenge, ctx: Context) -> None:
        if message.job_id in self._playing:
            return
        record = await self.market.dispute(message.job_id)
        if record is None or record.challenger_peer != ctx.sender:
            self.stats.inc("market.challenges_ignored")  # not disputed, or not the challenger
            return
        self._playing.add(message.job_id)
        self._open.pop(message.job_id, None)
        self.start_soon(self._referee, record, message)

    async def _referee(self, record: DisputeRecord, message: Challenge) -> None:
        job_id = record.job_id
        self.stats.inc("market.disputes")
        try:
            spec = TaskSpec.parse(message.spec)
        except Exception:
            spec = None
        if spec is None or spec_hash(spec) != record.spec_hash:
            await self._anchor(job_id, "solver_wins", "the challenger sent a wrong spec", 0)
            return
        if record.solver_peer is None:  # an unbound solver cannot defend its result
            await self._anchor(job_id, "challenger_wins", "solver has no peer id on chain", 0)
            return
        challenger_root = record.challenger_root or message.challenger_root
        verdict = await self.play(spec, record, challenger_root)
        if verdict.step:
            where = f"step {verdict.step}, op {verdict.op_index} ({verdict.op})"
        else:
            where = verdict.reason
        await self._anchor(job_id, outcome_of(verdict), where, verdict.rounds, verdict)

    async def play(
        self, spec: TaskSpec, record: DisputeRecord, challenger_root: bytes
    ) -> GameVerdict:
        """Play the Verde game: solver is side a, challenger side b. A silent side, an error
        reply, a reply claiming the other side, or one the game rejects counts as no answer;
        the parties owing a reply when a round stalls or ``game_timeout`` passes lose."""
        gid = game_id(record.job_id)
        sides = {"a": record.solver_peer, "b": record.challenger_peer}
        opened = ChallengeOpened(
            game_id=gid, task_id=spec.task_id, root_a=record.solver_root, root_b=challenger_root
        )
        state, out = open_game(spec, opened)
        with trio.move_on_after(self.config.game_timeout):
            while not state.done:
                replies: list[Message] = []
                async with trio.open_nursery() as nursery:
                    for query in out:
                        peer = sides.get(getattr(query, "to", ""))
                        if peer is not None:
                            nursery.start_soon(self._ask, peer, query, replies)
                out = []
                for reply in replies:
                    try:
                        state, emitted = handle(state, reply)
                    except Exception:  # a reply the game cannot take counts as none
                        continue
                    out.extend(emitted)
                    if state.done:
                        break
                if not state.done and not out:
                    state, out = handle(state, Deadline(game_id=gid))
        if not state.done:
            state, _ = handle(state, Deadline(game_id=gid))
        verdict = state.verdict
        if not isinstance(verdict, GameVerdict):
            raise AgentError(f"game {gid} ended without a verdict")
        return verdict

    async def _ask(self, peer: PeerId, query: Message, replies: list[Message]) -> None:
        with suppress(RemoteError, TimeoutError, AgentError, OSError):
            reply = await self.request(peer, query, timeout=self.config.query_timeout)
            if getattr(reply, "party", None) == getattr(query, "to", None):
                replies.append(reply)

    async def _anchor(
        self,
        job_id: int,
        outcome: Outcome,
        reason: str,
        rounds: int,
        verdict: GameVerdict | None = None,
    ) -> None:
        try:
            slashed = await self.market.resolve(job_id, outcome)
        except CoordinationError as exc:
            self.log.warning("resolving job %d failed: %s", job_id, exc)
            self._playing.discard(job_id)
            return
        message = Verdict(
            job_id=job_id, outcome=outcome, reason=reason[:256], rounds=rounds, slashed=slashed
        )
        self.verdicts[job_id] = message
        self.stats.inc("market.resolved")
        loser = "challenger" if outcome in ("solver_wins", "no_dispute", "timeout") else "solver"
        ops = f"; recomputed {verdict.referee_ops} op" if verdict is not None else ""
        self.say(
            f"job {job_id}: {loser} loses after {rounds} rounds at {reason}{ops}; "
            f"slashed {slashed / 10**18:.0f} AI"
        )
        await self.publish(MARKET_TOPIC, message)

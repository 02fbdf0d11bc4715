"""The built-in :class:`Referee` role: a staked referee that plays the Verde bisection game of
every challenge between the parties the chain names, over the roots the chain holds, votes its
verdict on chain, and after the dispute window finalizes the dispute and settles every bond."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Literal

import trio

from axl import BlobId, Context, Message, PeerId, RemoteError, RequestTimeout
from compute import ChallengeOpened, Dataset, Deadline, GameError, TaskSpec, handle, open_game
from compute import Verdict as GameVerdict
from coordination import CoordinationError, JobStatus, Role
from coordination import Outcome as ChainOutcome

from .._decorators import on
from .._errors import AgentError
from ._base import TOKEN, MarketAgent, Narrator, game_id
from ._chain import DisputeRecord, spec_hash
from ._data import DATA_TIMEOUT, BlobHolds, fetch_task_dataset
from ._messages import MARKET_TOPIC, Challenge, Outcome, Verdict

CaseOutcome = Literal["solver_wins", "challenger_wins", "no_dispute", "both_lost", "undecided"]
"""How one challenger's case ended: a decided game, equal roots, both sides wrong, or
undecided (the referee could not judge it: a chain error); only decided games lead to votes."""

_OUTCOMES: dict[ChainOutcome, Outcome] = {
    ChainOutcome.SOLVER_WINS: "solver_wins",
    ChainOutcome.SOLVER_LOSES: "challenger_wins",
    ChainOutcome.UNDECIDED: "undecided",
}


@dataclass(frozen=True)
class RefereeConfig:
    """A referee's settings (defaults in brackets): ``query_timeout`` per Verde query [30 s];
    ``game_timeout`` for a whole game, after which the parties that owe a reply lose [600 s];
    ``challenge_timeout``: a challenger that challenged on chain but sent no
    :class:`Challenge` within it has made no case (it loses once the window closes) [120 s];
    ``poll_interval`` between looks at the chain [0.5 s]; ``stake``: referee stake topped up
    at start [100 AI] (each vote locks the chain's minimum referee stake);
    ``data_timeout`` bounds the fetch of a disputed job's dataset blob [120 s];
    ``query_patience``: how long to keep asking a side that lets a query time out, each wait
    twice the last (at most a quarter of the patience), so one lost frame or a short partition
    does not make an honest party lose its game [0: ask once]."""

    query_timeout: float = 30.0
    game_timeout: float = 600.0
    challenge_timeout: float = 120.0
    poll_interval: float = 0.5
    stake: int = 100 * TOKEN
    data_timeout: float = DATA_TIMEOUT
    query_patience: float = 0.0


def outcome_of(verdict: GameVerdict) -> CaseOutcome:
    """The case outcome of a game verdict (the solver is side a)."""
    if verdict.outcome == "decided":
        return "solver_wins" if verdict.winner == "a" else "challenger_wins"
    return "no_dispute" if verdict.outcome == "no_dispute" else "both_lost"


def vote_of(cases: list[CaseOutcome | None], window_closed: bool) -> bool | None:
    """The referee's vote on a dispute from its challengers' cases (None: not concluded):
    against the solver as soon as one challenger won its game; for the solver once the
    challenge window closed and every case ended with none won by a challenger and at least
    one won by the solver or disputing nothing (``no_dispute``: the challenger's root on chain
    equals the solver's: the honest solver is paid, and the contract releases that
    challenger's bond, since such a challenge is how a batched leaf is made public);
    otherwise no vote (both_lost or undecided alone: the dispute ends Undecided, the
    submitter is refunded and nobody is slashed)."""
    if "challenger_wins" in cases:
        return False
    if window_closed and None not in cases and ("solver_wins" in cases or "no_dispute" in cases):
        return True
    return None


@dataclass
class _Dispute:
    challenge_end: int
    end: int
    challengers: dict[str, float] = field(default_factory=dict)  # address -> first seen
    cases: dict[str, CaseOutcome | None] = field(default_factory=dict)  # heard: outcome
    voted: bool = False
    finalized: bool = False
    lock: trio.Lock = field(default_factory=trio.Lock)  # one game at a time per job


class Referee(MarketAgent):
    """Judges disputes: see :class:`RefereeConfig`. The parties, both roots and the spec hash
    come from the chain; a :class:`Challenge` is heard only from the peer bound on chain to
    one of the job's challengers, with a spec that hashes to the chain's. Votes per
    :func:`vote_of`; once a dispute's window is over it calls ``finalize`` and ``claim`` for
    every challenger and itself (anyone could), then publishes a :class:`Verdict`.
    Counters: ``market.disputes``, ``market.votes``, ``market.resolved``,
    ``market.challenges_ignored``."""

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
        self.cases: dict[tuple[int, str], CaseOutcome] = {}
        """Every case played: (job id, challenger address) -> how it ended."""
        self._disputes: dict[int, _Dispute] = {}
        self._playing = 0
        self._rounds: dict[int, int] = {}
        self.holds = BlobHolds()
        self._held: dict[int, list[BlobId]] = {}

    def busy(self) -> bool:
        """Whether a game is played, a case message is awaited, or a vote or a finalization
        is due at the chain's current time (reads the embedded chain's clock)."""
        if self._playing:
            return True
        pending = [d for d in self._disputes.values() if not d.finalized]
        if not pending:
            return False
        now, clock = self.market.chain.block_timestamp(), trio.current_time()
        for d in pending:
            if now >= d.end:
                return True
            waiting = [
                a
                for a, since in d.challengers.items()
                if a not in d.cases and clock - since <= self.config.challenge_timeout
            ]
            if waiting or (not d.voted and self._vote(d, now) is not None):
                return True
        return False

    async def on_start(self) -> None:
        await super().on_start()
        await self.market.ensure_stake(Role.REFEREE, self.config.stake)
        self._cursor = self.market.cursor()
        self.start_soon(self._watch)

    def _vote(self, d: _Dispute, now: int) -> bool | None:
        clock = trio.current_time()
        cases: list[CaseOutcome | None] = []
        for address, since in d.challengers.items():
            if address in d.cases:
                cases.append(d.cases[address])
            elif clock - since > self.config.challenge_timeout:
                cases.append("solver_wins")  # challenged on chain, never made its case
            else:
                cases.append(None)
        return vote_of(cases, now >= d.challenge_end)

    async def _watch(self) -> None:
        """Follow challenges and finalizations on chain; vote when due; finalize after the
        dispute window."""
        while True:
            for event in await self.market.poll(self._cursor):
                if event.name == "Challenged":
                    await self._challenged(
                        int(event["jobId"]), str(event["challenger"]), int(event["disputeEnd"])
                    )
            now = await self.market.now()
            for job_id, d in list(self._disputes.items()):
                if d.finalized:
                    continue
                if now >= d.end:
                    await self._finalize(job_id, d)
                elif not d.voted and (vote := self._vote(d, now)) is not None:
                    await self._cast(job_id, d, vote)
            await trio.sleep(self.config.poll_interval)

    async def _challenged(self, job_id: int, challenger: str, dispute_end: int) -> None:
        """A ``Challenged`` event: the dispute and its challenger, kept with any case already
        heard for it (a :class:`Challenge` message handled while the chain was read here
        registers the dispute first; replacing it lost that case, and after
        ``challenge_timeout`` the referee voted for a solver whose challenger had won)."""
        d = self._disputes.get(job_id)
        if d is None:
            view = await self.market.job(job_id)
            d = self._disputes.setdefault(job_id, _Dispute(view.challenge_end or 0, dispute_end))
        d.challengers.setdefault(challenger.lower(), trio.current_time())

    @on(Challenge)
    async def challenge(self, message: Challenge, ctx: Context) -> None:
        d = self._disputes.get(message.job_id)
        if d is None:  # not (yet) seen on chain: the chain decides who challenged
            view = await self.market.job(message.job_id)
            d = _Dispute(view.challenge_end or 0, 0)
        address = await self._challenger_of(message.job_id, list(d.challengers), ctx.sender)
        if address is None:
            self.stats.inc("market.challenges_ignored")  # not one of the job's challengers
            self.say(f"job {message.job_id}: ignored a Challenge from a non-challenger")
            return
        record = await self.market.dispute(message.job_id, address)
        if record is None:
            self.stats.inc("market.challenges_ignored")
            return
        d = self._disputes.setdefault(message.job_id, _Dispute(d.challenge_end, record.end))
        d.challengers.setdefault(address, trio.current_time())
        if address in d.cases:
            return  # heard already
        d.cases[address] = None
        self._playing += 1
        self.start_soon(self._case, record, message, d)

    async def _challenger_of(self, job_id: int, known: list[str], peer: PeerId) -> str | None:
        """The on-chain challenger of ``job_id`` bound to ``peer`` (the known ones first, then
        the chain's ``Challenged`` events), or None."""
        for address in known:
            if await self.market.bound_to(address, peer):
                return address
        for address in await self.market.challengers(job_id):
            if address not in known and await self.market.bound_to(address, peer):
                return address
        return None

    async def _case(self, record: DisputeRecord, message: Challenge, d: _Dispute) -> None:
        case: CaseOutcome = "undecided"
        try:
            async with d.lock:  # the games of one job in turn: one won by a challenger is
                if "challenger_wins" not in d.cases.values():  # enough against the solver
                    case = await self._judge(record, message)
        except (CoordinationError, AgentError) as exc:  # the referee's own failure: abstain
            self.log.warning("case of job %d undecided: %s", record.job_id, exc)
        finally:
            d.cases[record.challenger.lower()] = case
            self._playing -= 1

    async def _judge(self, record: DisputeRecord, message: Challenge) -> CaseOutcome:
        job_id = record.job_id
        self.stats.inc("market.disputes")
        try:
            spec = TaskSpec.parse(message.spec)
        except Exception:
            spec = None
        if spec is None or spec_hash(spec) != record.spec_hash:
            self.say(f"job {job_id}: the challenger sent a wrong spec and loses its case")
            return "solver_wins"
        if record.solver_peer is None:  # an unbound solver cannot defend its result
            return "challenger_wins"
        while record.solver_root is None:  # a batched leaf: the solver must reveal it
            if await self.market.now() >= record.end:
                return "challenger_wins"  # never revealed: the chain rejects it anyway
            await trio.sleep(self.config.poll_interval)
            record = await self.market.dispute(job_id, record.challenger) or record
            if (await self.market.job(job_id)).status is not JobStatus.DISPUTED:
                return "challenger_wins"
        dataset = None
        if spec.dataset is not None:
            dataset = await self._dataset(spec, record)
        verdict = await self.play(spec, record, dataset=dataset)
        case = outcome_of(verdict)
        self._rounds[job_id] = self._rounds.get(job_id, 0) + verdict.rounds
        where = verdict.reason
        if verdict.step:
            where = f"step {verdict.step}, op {verdict.op_index} ({verdict.op})"
        self.cases[(job_id, record.challenger.lower())] = case
        self.say(
            f"job {job_id}: game over after {verdict.rounds} rounds at {where}: {case}"
            + (f"; recomputed {verdict.referee_ops} op" if verdict.referee_ops else "")
        )
        return case

    async def _dataset(self, spec: TaskSpec, record: DisputeRecord) -> Dataset:
        """A disputed job's dataset, fetched from both sides and the job's submitter (the
        game's ops read it; no party can carry it in a message). Raises :class:`AgentError`
        when nobody serves it (the case is then undecided)."""
        view = await self.market.job(record.job_id)
        submitter = await self.market.peer_of(view.submitter) if view.submitter else None
        holders = [p for p in (record.solver_peer, record.challenger_peer, submitter) if p]
        dataset = await fetch_task_dataset(
            self, spec, holders, self.holds, timeout=self.config.data_timeout
        )
        if dataset is None:
            raise AgentError(f"job {record.job_id}: the dataset is unavailable")
        assert spec.dataset is not None
        self._held.setdefault(record.job_id, []).append(BlobId.parse(spec.dataset.blob))
        return dataset

    async def play(
        self, spec: TaskSpec, record: DisputeRecord, *, dataset: Dataset | None = None
    ) -> GameVerdict:
        """Play the Verde game over the chain's roots: solver side a, challenger side b
        (``dataset``: the task's validated dataset, for a spec that names one). Each
        reply is fed with the side the bus authenticated it from; a silent side or an error
        reply counts as no answer and the parties owing a reply when a round stalls or
        ``game_timeout`` passes lose."""
        if record.solver_root is None:
            raise AgentError(f"job {record.job_id}: the solver's leaf is not revealed")
        gid = game_id(record.job_id)
        sides = {"a": record.solver_peer, "b": record.challenger_peer}
        opened = ChallengeOpened(
            game_id=gid,
            task_id=spec.task_id,
            root_a=record.solver_root,
            root_b=record.challenger_root,
        )
        try:
            state, out = open_game(spec, opened, dataset=dataset)
        except GameError as exc:
            raise AgentError(f"game {gid}: {exc}") from exc
        with trio.move_on_after(self.config.game_timeout):
            while not state.done:
                replies: list[tuple[Literal["a", "b"], Message]] = []
                async with trio.open_nursery() as nursery:
                    for query in out:
                        to = getattr(query, "to", "")
                        side: Literal["a", "b"] = "a" if to == "a" else "b"
                        peer = sides.get(to)
                        if peer is not None:
                            nursery.start_soon(self._ask, side, peer, query, replies)
                out = []
                for side, reply in replies:
                    state, emitted = handle(state, reply, sender=side)
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

    async def _ask(
        self,
        side: Literal["a", "b"],
        peer: PeerId,
        query: Message,
        replies: list[tuple[Literal["a", "b"], Message]],
    ) -> None:
        with suppress(RemoteError, TimeoutError, AgentError, OSError):
            reply = await self.ask(peer, query)
            replies.append((side, reply))

    async def ask(self, peer: PeerId, query: Message) -> Message:
        """One Verde query to a side of a game; raises when it goes unanswered
        (``RemoteError``, ``TimeoutError``, ...: the side then owes the reply). Waits
        ``query_timeout``, and after a timeout asks again, backing off, until
        ``query_patience`` has passed (0: asks once)."""
        wait = self.config.query_timeout
        patience = self.config.query_patience
        give_up = trio.current_time() + patience
        while True:
            try:
                return await self.request(peer, query, timeout=wait)
            except RequestTimeout:
                if patience <= 0 or trio.current_time() >= give_up:
                    raise
                self.stats.inc("market.queries_repeated")
                wait = min(wait * 2, patience / 4)

    async def _cast(self, job_id: int, d: _Dispute, solver_wins: bool) -> None:
        d.voted = True
        try:
            await self.market.vote(job_id, solver_wins)
        except CoordinationError as exc:  # not revealed, window over, conflict of interest
            self.log.warning("vote on job %d refused: %s", job_id, exc)
            return
        self.stats.inc("market.votes")
        side = "for" if solver_wins else "against"
        self.say(f"job {job_id}: voted {side} the solver on chain")

    async def _finalize(self, job_id: int, d: _Dispute) -> None:
        d.finalized = True
        for blob_id in self._held.pop(job_id, []):
            self.holds.release(self, blob_id)
        try:
            outcome, slashed = await self.market.finalize(job_id)
        except CoordinationError:  # finalized by someone else: read the outcome
            view = await self.market.dispute_view(job_id)
            if view.outcome is ChainOutcome.OPEN:
                d.finalized = False
                return
            outcome, slashed = view.outcome, 0
        for account in [*d.challengers, self.market.address]:
            with suppress(CoordinationError):  # nothing to claim, claimed already
                slashed += (await self.market.claim(job_id, account))[1]
        result = _OUTCOMES[outcome]
        reasons = [c for a, c in d.cases.items() if c is not None]
        message = Verdict(
            job_id=job_id,
            outcome=result,
            reason=(", ".join(reasons) or "no case played")[:256],
            rounds=min(self._rounds.pop(job_id, 0), 10_000),
            slashed=slashed,
        )
        self.verdicts[job_id] = message
        self.stats.inc("market.resolved")
        self.say(f"job {job_id}: dispute finalized: {result}; slashed {slashed / TOKEN:.0f} AI")
        await self.publish(MARKET_TOPIC, message)

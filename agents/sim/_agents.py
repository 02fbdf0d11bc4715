"""The swarm's market roles: ``agents.market``'s :class:`Submitter`, :class:`Solver`,
:class:`Verifier` and :class:`Referee`, subclassed only to live in a simulation — configured
from the scenario, compute inline with its time modelled in simulated seconds, trading on
their market shard's topic, funded (and started as market roles) when they first have work,
and reporting ground truth to the journal. Adversaries subclass these in ``_adversaries.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import trio

from agents import Context
from agents.market import (
    MARKET_TOPIC,
    BatchPolicy,
    Challenge,
    JobPosted,
    JobTaken,
    MarketAgent,
    Referee,
    RefereeConfig,
    ResultCommitted,
    Solver,
    SolverConfig,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
    Verdict,
    Verifier,
    VerifierConfig,
    VerifyPolicy,
)
from axl import Envelope, Message
from compute import SGD, MLPModel, Party, TaskSpec
from coordination import Role

from ._bank import TOKEN
from ._netstats import CountingTransport
from ._world import Member, World

T = TypeVar("T")


def job_spec(world: World, seed: int, steps: int) -> TaskSpec:
    """The scenario's job: a tiny MLP trained ``steps`` SGD steps, a checkpoint every step."""
    model = MLPModel(in_dim=4, hidden=(world.scenario.jobs.hidden,), classes=2)
    return TaskSpec(
        model=model, optimizer=SGD(), steps=steps, batch_size=2, seed=seed,
        checkpoint_interval=1,
    )  # fmt: skip


class SwarmRole(MarketAgent):
    """What every simulated market role adds to the library's: see the module doc. Call
    :meth:`join_world` before the runtime starts it."""

    inline_compute = True
    world: World
    member: Member
    stake_role: Role | None = None

    def join_world(self, world: World) -> None:
        self.world = world
        self.member = world.members[self.name]
        self._active = trio.Event()
        self._activating = False

    @property
    def active(self) -> bool:
        """Whether it started as a market role (funded, bound, staked, loops running)."""
        return self._active.is_set()

    async def on_start(self) -> None:
        if self.world.shards > 1:
            await self.join(self.world.topic(self.member.shard))
        if self.world.eager:
            await self.activate()

    async def activate(self) -> None:
        """Start as the market role: fund the account (lazily provisioned swarms) and run the
        library's own start (bind the peer id, stake, start the role's loops)."""
        if self._active.is_set():
            return
        if self._activating:
            await self._active.wait()
            return
        self._activating = True
        self.chain = self.world.bank.fund(self.name, self.stake_role)
        await super().on_start()
        self._active.set()

    async def publish(self, topic: str, message: Message) -> None:
        """The market topic is the member's shard's."""
        if topic == MARKET_TOPIC:
            topic = self.world.topic(self.member.shard)
        await super().publish(topic, message)

    async def compute(self, fn: Callable[..., T], *args: Any) -> T:
        """Inline, then sleep the modelled compute time of a job (``jobs.step_seconds`` per
        step) when ``fn`` trained or re-ran one; game answers take no simulated time."""
        result = await super().compute(fn, *args)
        if args and isinstance(args[0], TaskSpec):
            await trio.sleep(args[0].steps * self.world.scenario.jobs.step_seconds)
        return result


def _windows(world: World) -> float:
    market = world.scenario.market
    return float(market.challenge_window + market.dispute_window)


class SimSubmitter(SwarmRole, Submitter):
    """Posts the scenario's jobs as a Poisson process (its share of ``jobs.rate_per_hour``)."""

    def __init__(self, world: World, name: str) -> None:
        scenario = world.scenario
        super().__init__(
            SubmitterConfig(
                payment=scenario.jobs.payment * TOKEN,
                timeouts=TimeoutPolicy(bid_window=1.0, commit_timeout=int(scenario.jobs.deadline)),
                poll_interval=scenario.market.settle_interval,
            ),
            name,
        )
        self.join_world(world)
        self.rng = world.rng(name)

    async def on_start(self) -> None:
        await super().on_start()
        self.start_soon(self._arrivals)

    async def _arrivals(self) -> None:
        scenario = self.world.scenario
        rate = scenario.jobs.rate_per_hour / 3600 / scenario.roles.submitters
        if rate <= 0:
            return
        jobs = scenario.jobs
        while True:
            await trio.sleep(self.rng.expovariate(rate))
            if trio.current_time() >= scenario.duration:
                return
            spec = job_spec(self.world, self.rng.getrandbits(32), self.rng.randint(*jobs.steps))
            await self.activate()
            await self.submit([spec])


class SimSolver(SwarmRole, Solver):
    """Bids only on the jobs whose seeded draw of candidates includes it, at its seeded
    price; started as a market role by the first such job."""

    stake_role = Role.SOLVER

    def __init__(self, world: World, name: str, **config: Any) -> None:
        scenario, market = world.scenario, world.scenario.market
        super().__init__(
            SolverConfig(
                price_per_step=world.price(name),
                stake=world.bank.stake_amount[Role.SOLVER],
                offer_interval=scenario.duration + scenario.drain + 1,
                commits=BatchPolicy(16, market.settle_interval / 2),
                settles=BatchPolicy(64, market.settle_interval),
                # the defend loop reveals a challenged batch leaf (the referee waits for it)
                poll_interval=market.settle_interval,
                dispute_timeout=_windows(world),
                **config,
            ),
            name,
        )
        self.join_world(world)
        self.rng = world.rng(name)

    async def on_start(self) -> None:
        transport = self.bus.transport
        if isinstance(transport, CountingTransport):
            transport.narrow = self._wants_published
        await super().on_start()

    def accepts(self, job: JobPosted) -> bool:
        return super().accepts(job) and self.name in self.world.candidates(
            job.job_id, self.member.shard
        )

    def _wants_published(self, topic: str, envelope: Envelope) -> bool:
        """False only for a job announcement (``JobPosted``, ``JobTaken``) of a job whose
        seeded draw of candidates leaves this solver out: its handlers ignore those (it
        never bids on the job, so it has no bid or backlog entry to drop). Anything that
        does not decode still arrives, to be rejected by the bus."""
        message = self.world.peek(envelope)  # None but for job announcements
        if not isinstance(message, JobPosted | JobTaken):
            return True
        return self.name in self.world.candidates(message.job_id, self.member.shard)

    async def job_posted(self, message: JobPosted, ctx: Context) -> None:
        if not self.active:
            if message.job_id in self.jobs or not self.accepts(message):
                return
            await self.activate()
        await super().job_posted(message, ctx)

    def honest_root(self, spec: TaskSpec) -> bytes:
        """The root an honest run of ``spec`` commits (ground truth for the report)."""
        return Party("a", spec).root


class SimVerifier(SwarmRole, Verifier):
    """Re-runs the results whose seeded draw of checkers includes it; started as a market
    role by the first such result. Hands a dispute to the referee again until the game's
    patience runs out (the referee hears each challenger once), so a lost frame does not
    cost an honest challenger its case."""

    stake_role = Role.VERIFIER

    def __init__(self, world: World, name: str, **config: Any) -> None:
        salt = world.rng(f"salt\0{name}").randbytes(16)
        super().__init__(
            VerifierConfig(
                policy=VerifyPolicy(0, salt),
                stake=world.bank.stake_amount[Role.VERIFIER],
                dispute_timeout=_windows(world),
                **config,
            ),
            name,
        )
        self.join_world(world)

    def should_verify(self, job_id: int, root: bytes, sample_bps: int, asked: bool) -> bool:
        return asked or self.name in self.world.checkers(job_id, self.member.shard)

    def agrees(self, job_id: int, party: Party, root: bytes) -> bool:
        self.world.journal.checks.setdefault(job_id, []).append(self.name)
        return super().agrees(job_id, party, root)

    async def result_committed(self, message: ResultCommitted, ctx: Context) -> None:
        if not self.active:
            seen = self.seen.get(message.job_id)
            if seen is None or seen.commitment is not None:
                return
            if not self.should_verify(message.job_id, message.root, seen.sample_bps, False):
                return
            await self.activate()
        await super().result_committed(message, ctx)

    async def send_challenge(self, challenge: Challenge) -> None:
        market = self.world.scenario.market
        give_up = trio.current_time() + market.game_patience
        wait = 2 * market.query_timeout
        while True:
            await super().send_challenge(challenge)
            if trio.current_time() + wait > give_up:
                return
            await trio.sleep(wait)
            wait *= 2


class SimReferee(SwarmRole, Referee):
    """The one staked referee; asks a silent side again, backing off, until the scenario's
    ``game_patience`` runs out (so a lost frame or a short partition does not make an honest
    party lose), and publishes each verdict on the shard of the job's solver."""

    stake_role = Role.REFEREE

    def __init__(self, world: World, name: str) -> None:
        market = world.scenario.market
        super().__init__(
            RefereeConfig(
                query_timeout=market.query_timeout,
                game_timeout=market.dispute_window / 2,
                challenge_timeout=market.game_patience,
                poll_interval=market.settle_interval,
                stake=world.bank.stake_amount[Role.REFEREE],
                query_patience=market.game_patience,
            ),
            name,
        )
        self.join_world(world)

    async def on_start(self) -> None:
        await super().on_start()
        await self.activate()  # the one referee watches the chain from the start, lazy or not

    async def publish(self, topic: str, message: Message) -> None:
        if topic == MARKET_TOPIC and isinstance(message, Verdict):
            solver = self.world.bank.admin.job(message.job_id).solver
            member = self.world.members.get(self.world.name_of(solver) or "")
            if member is not None:
                topic = self.world.topic(member.shard)
        await super().publish(topic, message)

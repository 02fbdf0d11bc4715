"""Stand-in market roles: a submitter, a solver, a verifier and a referee small enough to run
by the thousand, with every adversarial behaviour of the scenario. They use the real pieces —
the bus, reproducible torch training, the Verde game, the JobMarket contracts — and are
replaced by ``agents.market``'s roles through ``_market.py`` when those land.

Training and chain calls run inline on the event loop: under the simulator's MockClock they
take no simulated time (modelled time is slept explicitly), and nothing depends on how long
they take on the wall clock, which keeps runs deterministic.
"""

from __future__ import annotations

import contextlib

import trio

from agents import Agent, Context, on
from axl import Message, PeerId, PeerUnreachable, RemoteError, RequestTimeout
from compute import (
    SGD,
    BisectionQuery,
    ChallengeOpened,
    Cheat,
    Deadline,
    IntervalQuery,
    LeafQuery,
    MLPModel,
    OpQuery,
    Party,
    StepQuery,
    TaskSpec,
    handle,
    open_game,
)
from coordination import CoordinationError, InsufficientStake, JobStatus, Role

from ._bank import TOKEN
from ._messages import (
    Accept,
    Assigned,
    Award,
    Check,
    Checked,
    Dispute,
    DisputeTaken,
    Done,
    Spam,
)
from ._world import World

QUERIES = (BisectionQuery, LeafQuery, IntervalQuery, StepQuery, OpQuery)
Query = BisectionQuery | LeafQuery | IntervalQuery | StepQuery | OpQuery
_ASK_FAILED = (RemoteError, RequestTimeout, PeerUnreachable)
_TRIES = 6  # solvers a submitter tries per job before giving up


class SimAgent(Agent):
    def __init__(self, name: str, world: World) -> None:
        super().__init__(name)
        self.world = world
        self.member = world.members[name]
        self.rng = world.rng(name)


class GameParty(SimAgent):
    """Answers the referee's Verde queries from its own run of each disputed job."""

    def __init__(self, name: str, world: World) -> None:
        super().__init__(name, world)
        self.parties: dict[str, Party] = {}

    @on(*QUERIES)
    async def game_query(self, message: Query, ctx: Context) -> Message:
        party = self.parties.get(message.game_id)
        reply = party.respond(message) if party is not None else None
        if reply is None:
            raise RemoteError("no_answer", f"no answer for {message.axl_tag}")
        return reply

    async def forget(self, game_id: str, after: float) -> None:
        await trio.sleep(after)
        self.parties.pop(game_id, None)


def job_spec(world: World, rng_seed: int, steps: int) -> TaskSpec:
    jobs = world.scenario.jobs
    model = MLPModel(in_dim=4, hidden=(jobs.hidden,), classes=2)
    return TaskSpec(
        model=model, optimizer=SGD(), steps=steps, batch_size=2, seed=rng_seed,
        checkpoint_interval=1,
    )  # fmt: skip


class Submitter(SimAgent):
    """Posts jobs as a Poisson process, awards each to the cheapest free solver of a few drawn
    at random, escrows and assigns it on chain, asks verifiers to check a sampled share of the
    results, and settles (or has refunded) every job it posted."""

    def __init__(self, name: str, world: World) -> None:
        super().__init__(name, world)
        self.done: dict[int, trio.Event] = {}
        self.unstaked: set[str] = set()

    async def on_start(self) -> None:
        self.start_soon(self._arrivals)

    async def _arrivals(self) -> None:
        scenario = self.world.scenario
        rate = scenario.jobs.rate_per_hour / 3600 / scenario.roles.submitters
        if rate <= 0:
            return
        count = 0
        while True:
            await trio.sleep(self.rng.expovariate(rate))
            if trio.current_time() >= scenario.duration:
                return
            count += 1
            self.start_soon(self._job, count)

    async def _job(self, count: int) -> None:
        world, jobs = self.world, self.world.scenario.jobs
        spec = job_spec(world, self.rng.getrandbits(32), self.rng.randint(*jobs.steps))
        payment = jobs.payment * TOKEN
        placed = await self._place(spec, payment)
        if placed is None:
            world.journal.unplaced += 1
            return
        job_id, solver = placed
        self.done.setdefault(job_id, trio.Event())
        with contextlib.suppress(PeerUnreachable):  # if so, the deadline refunds it
            await self.send(solver, Assigned(job_id=job_id, spec=spec.model_dump_json()))
        with trio.move_on_after(jobs.deadline):
            await self.done[job_id].wait()
        await self._verify(job_id, spec)
        await self._finish(job_id)

    async def _place(self, spec: TaskSpec, payment: int) -> tuple[int, str] | None:
        world = self.world
        solvers = world.by_role.get("solver", [])
        drawn = self.rng.sample(solvers, min(_TRIES, len(solvers)))
        compared = world.scenario.jobs.candidates
        drawn[:compared] = sorted(drawn[:compared], key=lambda name: (world.price(name), name))
        for solver in drawn:
            if solver in self.unstaked:
                continue
            try:
                accept = await self.request(
                    solver,
                    Award(spec=spec.model_dump_json(), payment=payment),
                    reply=Accept,
                    timeout=world.scenario.market.query_timeout,
                )
            except _ASK_FAILED:
                continue
            if accept.address.lower() != world.bank.address(solver).lower():
                continue  # a reply naming someone else's account
            wallet = world.bank.ensure(self.name)
            deadline = world.bank.chain_now() + int(world.scenario.jobs.deadline)
            try:
                job_id = wallet.post_job(
                    bytes.fromhex(spec.task_id),
                    payment,
                    deadline,
                    solver=accept.address,
                    auto_approve=False,  # approved once, when the bank provisioned it
                ).value
            except InsufficientStake:  # slashed below the minimum: not worth asking again
                self.unstaked.add(solver)
                continue
            except CoordinationError:
                continue
            return job_id, solver
        return None

    @on(Done)
    async def on_done(self, message: Done, ctx: Context) -> None:
        event = self.done.get(message.job_id)
        if event is not None:
            event.set()

    async def _verify(self, job_id: int, spec: TaskSpec) -> None:
        world = self.world
        verifiers = world.by_role.get("verifier", [])
        if not verifiers or not self.done[job_id].is_set():
            return
        if self.rng.random() >= world.scenario.jobs.verify_rate:
            return
        chosen = self.rng.sample(verifiers, min(world.scenario.jobs.checkers, len(verifiers)))
        world.journal.checks[job_id] = chosen
        for verifier in chosen:
            self.start_soon(self._ask_check, verifier, job_id, spec)

    async def _ask_check(self, verifier: str, job_id: int, spec: TaskSpec) -> None:
        timeout = self.world.scenario.market.query_timeout
        check = Check(job_id=job_id, spec=spec.model_dump_json())
        with contextlib.suppress(*_ASK_FAILED):
            await self.request(verifier, check, reply=Checked, timeout=timeout)

    async def _finish(self, job_id: int) -> None:
        """Settle once the window is over, or refund after the deadline; a dispute is left to
        the referee. Gives up once the job is final."""
        bank, market = self.world.bank, self.world.scenario.market
        wallet = bank.wallet(self.name)
        if self.done[job_id].is_set():
            await trio.sleep(market.challenge_window + 1)
        while True:
            bank.sync_time()
            job = bank.admin.job(job_id)
            now = bank.chain_now()
            try:
                if job.status is JobStatus.COMMITTED and now >= (job.challenge_end or 0):
                    wallet.settle(job_id)
                    return
                if job.status is JobStatus.ASSIGNED and now > (job.deadline or 0):
                    wallet.refund(job_id)
                    return
            except CoordinationError:
                pass  # e.g. challenged in the same second; look again
            if job.status in (JobStatus.SETTLED, JobStatus.REJECTED, JobStatus.REFUNDED):
                return
            await trio.sleep(market.settle_interval)


class Solver(GameParty):
    """Stakes on its first award, trains what it is assigned (reproducibly, or cheating as its
    behaviour says), commits the root on chain and keeps what a dispute needs until the
    challenge window closes."""

    capacity = 2

    def __init__(self, name: str, world: World) -> None:
        super().__init__(name, world)
        self.active = 0

    @on(Award)
    async def award(self, message: Award, ctx: Context) -> Accept:
        if self.active >= self.capacity:
            raise RemoteError("busy", "at capacity")
        wallet = self.world.bank.ensure(self.name, Role.SOLVER)
        return Accept(address=wallet.address)

    @on(Assigned)
    async def assigned(self, message: Assigned, ctx: Context) -> None:
        if self.member.behaviour == "vanishing":
            self.world.journal.vanished.append(self.name)
            self.stop()
            return
        self.active += 1
        self.start_soon(self._run_job, message.job_id, TaskSpec.parse(message.spec), ctx.sender)

    async def _run_job(self, job_id: int, spec: TaskSpec, submitter: PeerId) -> None:
        try:
            await self._train_and_commit(job_id, spec)
        finally:
            self.active -= 1
        with contextlib.suppress(PeerUnreachable):
            await self.send(submitter, Done(job_id=job_id))

    async def _train_and_commit(self, job_id: int, spec: TaskSpec) -> None:
        world, behaviour = self.world, self.member.behaviour
        party: Party | None = None
        if behaviour == "lazy":
            root = world.bank.admin.job(max(1, job_id - 1)).result_root
            if root == bytes(32):
                root = bytes.fromhex(spec.task_id)  # nothing to copy yet: any root will do
        else:
            cheat = None
            if behaviour.startswith("cheat:") or behaviour == "colluding":
                kind = "wrong_op" if behaviour == "colluding" else behaviour.split(":", 1)[1]
                step = self.rng.randint(1, spec.steps)
                cheat = Cheat(kind, step=step, op=self.rng.randrange(64))  # type: ignore[arg-type]
            party = Party("a", spec, cheat=cheat)
            root = party.root
        if not self.member.honest:  # ground truth for the report: is this result wrong?
            world.journal.wrong[job_id] = root != Party("a", spec).root
        await trio.sleep(spec.steps * world.scenario.jobs.step_seconds)
        try:
            world.bank.wallet(self.name).commit_result(job_id, root)
        except CoordinationError:
            return  # past the deadline (a partition, say): the submitter gets a refund
        if party is not None:
            game = f"job-{job_id}"
            self.parties[game] = party
            window = world.scenario.market.challenge_window
            self.start_soon(self.forget, game, 2.0 * window + world.scenario.drain)


class Verifier(GameParty):
    """Recomputes the jobs it is asked about; challenges a root it cannot reproduce (staking
    first) and hands the dispute to the referee. False accusers challenge honest results with a
    made-up root; a colluding verifier vouches for its partner's jobs."""

    @on(Check)
    async def check(self, message: Check, ctx: Context) -> Checked:
        world, behaviour = self.world, self.member.behaviour
        job = world.bank.admin.job(message.job_id)
        if job.status is not JobStatus.COMMITTED:
            return Checked(job_id=message.job_id, agrees=job.status is not JobStatus.DISPUTED)
        solver = world.name_of(job.solver)
        if behaviour == "colluding" and solver == self.member.partner:
            return Checked(job_id=message.job_id, agrees=True)
        spec = TaskSpec.parse(message.spec)
        if spec.task_id != job.spec_hash.hex():
            raise RemoteError("wrong_spec", "the spec does not hash to the job's spec hash")
        cheat = Cheat("wrong_final") if behaviour == "false_accuser" else None
        party = Party("b", spec, cheat=cheat)
        if party.root == job.result_root:
            return Checked(job_id=message.job_id, agrees=True)
        wallet = world.bank.ensure(self.name, Role.VERIFIER)
        try:
            wallet.challenge(message.job_id, job.result_root)
        except CoordinationError:  # someone challenged first, or the window closed
            return Checked(job_id=message.job_id, agrees=False)
        world.journal.disputes_opened += 1
        game = f"job-{message.job_id}"
        self.parties[game] = party
        self.start_soon(self.forget, game, 2.0 * world.scenario.market.challenge_window)
        dispute = Dispute(job_id=message.job_id, spec=message.spec, root=party.root)
        self.start_soon(self._to_referee, dispute)
        return Checked(job_id=message.job_id, agrees=False)

    async def _to_referee(self, dispute: Dispute) -> None:
        timeout = self.world.scenario.market.query_timeout
        for _ in range(5):
            try:
                await self.request("referee", dispute, reply=DisputeTaken, timeout=timeout)
                return
            except _ASK_FAILED:
                continue


class Referee(SimAgent):
    """Plays the Verde game between the solver (side a, its root and address from chain) and
    the challenger (side b) over the bus and anchors the verdict (it holds the resolver role).
    A query that goes unanswered is asked again, backing off, until the scenario's
    ``game_patience`` runs out; only then does it count as silence."""

    handler_concurrency = 64

    def __init__(self, name: str, world: World) -> None:
        super().__init__(name, world)
        self.games: set[int] = set()

    @on(Dispute)
    async def dispute(self, message: Dispute, ctx: Context) -> DisputeTaken:
        world = self.world
        if message.job_id in self.games:  # a retry whose acknowledgement was lost
            return DisputeTaken(job_id=message.job_id)
        job = world.bank.admin.job(message.job_id)
        challenger = world.name_of(job.challenger)
        solver = world.name_of(job.solver)
        if job.status is not JobStatus.DISPUTED or challenger is None or solver is None:
            raise RemoteError("no_dispute", f"job {message.job_id} is not disputed")
        if world.members[challenger].peer != ctx.sender:
            raise RemoteError("not_challenger", "only the challenger opens the game")
        spec = TaskSpec.parse(message.spec)
        if spec.task_id != job.spec_hash.hex():
            raise RemoteError("wrong_spec", "the spec does not hash to the job's spec hash")
        self.games.add(message.job_id)
        self.start_soon(self._play, message, spec, job.result_root, (solver, challenger))
        return DisputeTaken(job_id=message.job_id)

    async def _play(
        self, message: Dispute, spec: TaskSpec, root_a: bytes, names: tuple[str, str]
    ) -> None:
        world = self.world
        sides = {"a": names[0], "b": names[1]}
        game_id = f"job-{message.job_id}"
        opened = ChallengeOpened(
            game_id=game_id, task_id=spec.task_id, root_a=root_a, root_b=message.root
        )
        state, out = open_game(spec, opened)
        while not state.done:
            replies: list[Message] = []
            async with trio.open_nursery() as nursery:
                for query in out:
                    nursery.start_soon(self._ask, sides[query.to], query, replies)  # type: ignore[attr-defined]
            out = []
            for reply in replies:
                state, emitted = handle(state, reply)
                out.extend(emitted)
                if state.done:
                    break
            if not state.done and not out:
                state, out = handle(state, Deadline(game_id=game_id))
        verdict = state.verdict
        solver_wins = verdict is not None and verdict.winner == "a"
        world.journal.games[message.job_id] = "solver" if solver_wins else "challenger"
        world.bank.admin.resolve_dispute(message.job_id, solver_wins)

    async def _ask(self, peer: str, query: Message, replies: list[Message]) -> None:
        """Ask until answered or ``game_patience`` runs out (backing off), so a lost frame
        or a short partition does not make an honest party lose; a refusal ends it."""
        market = self.world.scenario.market
        give_up = trio.current_time() + market.game_patience
        wait = market.query_timeout
        while trio.current_time() < give_up:
            try:
                reply = await self.request(peer, query, timeout=wait)
            except RequestTimeout:
                wait = min(wait * 2, market.game_patience / 4)
                continue  # lost on the way, or cut off: ask again
            except (RemoteError, PeerUnreachable):
                return
            if getattr(reply, "party", None) == getattr(query, "to", None):
                replies.append(reply)
            return


class Spammer(SimAgent):
    """Floods random agents with invalid frames: random bytes, and signed messages whose
    signature its transport breaks on the way out (see ``_netstats.CountingTransport``)."""

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

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
    Side,
    StepQuery,
    TaskSpec,
    handle,
    open_game,
)
from coordination import Chain, CoordinationError, InsufficientStake, JobStatus, Outcome, Role

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
            if job.status is JobStatus.DISPUTED:
                # sleep through the dispute window instead of polling it
                ahead = bank.admin.dispute(job_id).end - now
                if ahead >= 0:
                    await trio.sleep(ahead + 1)
                    bank.sync_time()
                close_dispute(self.world, wallet, job_id)
                job = bank.admin.job(job_id)
            if job.status in (JobStatus.SETTLED, JobStatus.REJECTED, JobStatus.REFUNDED):
                return
            await trio.sleep(market.settle_interval)


def close_dispute(world: World, wallet: Chain, job_id: int) -> None:
    """Once the dispute window is over, finalize the job (anyone may) and claim every
    challenger's bond and every referee's lock (anyone may, once per account). Does nothing
    before the window ends; a call the contract refuses (someone was first) changes nothing."""
    bank = world.bank
    end = bank.admin.dispute(job_id).end
    if end == 0 or bank.chain_now() < end:
        return
    with contextlib.suppress(CoordinationError):
        wallet.finalize(job_id)
    job = bank.job(job_id)
    if job is None or job.outcome is Outcome.OPEN:
        return
    for account in sorted({*job.challengers, *job.votes}):
        if (job_id, account.lower()) in world.journal.claimed:
            continue
        with contextlib.suppress(CoordinationError):
            wallet.claim(job_id, account)
        world.journal.claimed.add((job_id, account.lower()))


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
            if root is None or root == bytes(32):
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
    """Recomputes the jobs it is asked about; attests a root it reproduces (for the verifier
    fee) and challenges one it cannot with its own root (staking first), then hands the
    dispute to the referee. False accusers challenge honest results with a made-up root; a
    colluding verifier vouches for (and attests) its partner's jobs."""

    @on(Check)
    async def check(self, message: Check, ctx: Context) -> Checked:
        world, behaviour = self.world, self.member.behaviour
        job = world.bank.admin.job(message.job_id)
        if job.status is not JobStatus.COMMITTED:
            return Checked(job_id=message.job_id, agrees=job.status is not JobStatus.DISPUTED)
        solver = world.name_of(job.solver)
        posted = world.bank.job(message.job_id)
        if job.result_root is None or posted is None:
            raise RemoteError("not_committed", f"job {message.job_id} has no root alone")
        if behaviour == "colluding" and solver == self.member.partner:
            self._attest(message.job_id, job.result_root)
            return Checked(job_id=message.job_id, agrees=True)
        spec = TaskSpec.parse(message.spec)
        if spec.task_id != posted.spec_hash.hex():
            raise RemoteError("wrong_spec", "the spec does not hash to the job's spec hash")
        cheat = Cheat("wrong_final") if behaviour == "false_accuser" else None
        party = Party("b", spec, cheat=cheat)
        if party.root == job.result_root:
            self._attest(message.job_id, job.result_root)
            return Checked(job_id=message.job_id, agrees=True)
        wallet = world.bank.ensure(self.name, Role.VERIFIER)
        try:
            wallet.challenge(message.job_id, party.root)
        except CoordinationError:  # someone challenged first, or the window closed
            return Checked(job_id=message.job_id, agrees=False)
        world.journal.disputes_opened += 1
        game = f"job-{message.job_id}"
        self.parties[game] = party
        self.start_soon(self.forget, game, 2.0 * world.scenario.market.challenge_window)
        dispute = Dispute(job_id=message.job_id, spec=message.spec, root=party.root)
        self.start_soon(self._to_referee, dispute)
        return Checked(job_id=message.job_id, agrees=False)

    def _attest(self, job_id: int, root: bytes) -> None:
        """Attest a reproduced root (a verifier-fee share at settlement; slashed if the result
        is rejected). Refused (window closed, three attesters already, stake locked): skip."""
        wallet = self.world.bank.ensure(self.name, Role.VERIFIER)
        with contextlib.suppress(CoordinationError):
            wallet.attest(job_id, root)

    async def _to_referee(self, dispute: Dispute) -> None:
        timeout = self.world.scenario.market.query_timeout
        for _ in range(5):
            try:
                await self.request("referee", dispute, reply=DisputeTaken, timeout=timeout)
                return
            except _ASK_FAILED:
                continue


class Referee(SimAgent):
    """A staked referee. For each challenger that brings it a dispute it plays the Verde game
    between the solver (side a) and that challenger (side b) over the bus — the spec hash, the
    solver's root and the challenger's root all read from chain, never from the message —
    and once the challenge window is over and every game of the job is played, votes: against
    the solver if it lost any game, for it if it won one, not at all otherwise (no vote: the
    result stands, nobody is slashed). A query that goes unanswered is asked again, backing
    off, until the scenario's ``game_patience`` runs out; only then does it count as
    silence."""

    handler_concurrency = 64

    def __init__(self, name: str, world: World) -> None:
        super().__init__(name, world)
        self.games: set[tuple[int, str]] = set()
        self.playing: dict[int, int] = {}
        self.results: dict[int, list[str]] = {}

    @on(Dispute)
    async def dispute(self, message: Dispute, ctx: Context) -> DisputeTaken:
        world = self.world
        challenger = next((n for n, m in world.members.items() if m.peer == ctx.sender), None)
        if challenger is None:
            raise RemoteError("not_challenger", "only a challenger opens a game")
        if (message.job_id, challenger) in self.games:  # a retry whose ack was lost
            return DisputeTaken(job_id=message.job_id)
        admin = world.bank.admin
        job = admin.job(message.job_id)
        posted = world.bank.job(message.job_id)
        solver = world.name_of(job.solver)
        root_b = admin.challenge_of(message.job_id, world.bank.address(challenger))
        if job.status is not JobStatus.DISPUTED or solver is None or posted is None:
            raise RemoteError("no_dispute", f"job {message.job_id} is not disputed")
        root_a = job.result_root
        if root_a is None or root_b is None:
            raise RemoteError("not_challenger", "no committed root, or the sender never challenged")
        spec = TaskSpec.parse(message.spec)
        if spec.task_id != posted.spec_hash.hex():
            raise RemoteError("wrong_spec", "the spec does not hash to the job's spec hash")
        self.games.add((message.job_id, challenger))
        first = message.job_id not in self.results
        self.results.setdefault(message.job_id, [])
        self.playing[message.job_id] = self.playing.get(message.job_id, 0) + 1
        self.start_soon(self._play, message.job_id, spec, (root_a, root_b), (solver, challenger))
        if first:
            self.start_soon(self._vote, message.job_id)
        return DisputeTaken(job_id=message.job_id)

    async def _play(
        self, job_id: int, spec: TaskSpec, roots: tuple[bytes, bytes], names: tuple[str, str]
    ) -> None:
        sides: dict[Side, str] = {"a": names[0], "b": names[1]}
        game_id = f"job-{job_id}"
        opened = ChallengeOpened(
            game_id=game_id, task_id=spec.task_id, root_a=roots[0], root_b=roots[1]
        )
        state, out = open_game(spec, opened)
        while not state.done:
            replies: list[tuple[Side, Message]] = []
            async with trio.open_nursery() as nursery:
                for query in out:
                    side = query.to  # type: ignore[attr-defined]
                    nursery.start_soon(self._ask, sides[side], side, query, replies)
            out = []
            for side, reply in replies:
                state, emitted = handle(state, reply, sender=side)
                out.extend(emitted)
                if state.done:
                    break
            if not state.done and not out:
                state, out = handle(state, Deadline(game_id=game_id))
        verdict = state.verdict
        if verdict is None or verdict.outcome != "decided":
            result = "none"
        else:
            result = "solver" if verdict.winner == "a" else "challenger"
        self.results[job_id].append(result)
        self.playing[job_id] -= 1

    async def _vote(self, job_id: int) -> None:
        """After the challenge window (no more challengers) and every game, vote once."""
        world = self.world
        while True:
            job = world.bank.admin.job(job_id)
            behind = (job.challenge_end or 0) - world.bank.chain_now()
            if behind < 0 and self.playing[job_id] == 0:
                break
            await trio.sleep(max(behind, 0) + world.scenario.market.settle_interval)
        results = self.results[job_id]
        if "challenger" in results:
            solver_wins: bool | None = False
        elif "solver" in results:
            solver_wins = True
        else:
            solver_wins = None
        world.journal.games[job_id] = {False: "challenger", True: "solver", None: "none"}[
            solver_wins
        ]
        if solver_wins is not None:
            wallet = world.bank.ensure(self.name, Role.REFEREE)
            try:
                wallet.vote(job_id, solver_wins)
            except CoordinationError as exc:  # e.g. the dispute window closed first
                world.journal.games[job_id] = f"no vote: {type(exc).__name__}"

    async def _ask(
        self, peer: str, side: Side, query: Message, replies: list[tuple[Side, Message]]
    ) -> None:
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
            replies.append((side, reply))  # the game judges a wrong reply against ``side``
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

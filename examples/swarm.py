"""The compute market end to end: agents on the AXL bus, reproducible torch training, a Verde
dispute, and settlement on the embedded EVM chain.

A submitter escrows payment for two training jobs on chain and posts them on the market topic.
Two solvers bid; each job is assigned on chain, trained reproducibly, and its trace root is
committed on chain. A verifier re-runs every job: one solver is honest, the other tampers with
one training step. The verifier challenges that result on chain, the referee plays the Verde
bisection game between the two over the bus, recomputes one operation, and anchors the verdict:
the cheat is slashed, the submitter refunded. The honest job settles after the challenge window
and its 0.5 % fee is burned.

    python -m examples.swarm
"""

from __future__ import annotations

import argparse
from contextlib import suppress
from dataclasses import dataclass, field

import trio

from agents import Agent, AgentRuntime, Context, on
from axl import Message, PeerId, RemoteError
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
    Verdict,
    handle,
    open_game,
)
from coordination import Chain, DeployParams, JobStatus, Role

TOKEN = 10**18
MARKET = "swarm.market"


# -- the market's messages --------------------------------------------------------------------


class JobPosted(Message, tag="swarm.job_posted"):
    job_id: int
    spec: str  # TaskSpec as JSON; its SHA-256 is the spec hash escrowed on chain
    payment: int


class Bid(Message, tag="swarm.bid"):
    job_id: int
    address: str


class JobAssigned(Message, tag="swarm.job_assigned"):
    job_id: int
    spec: str


class ResultCommitted(Message, tag="swarm.result_committed"):
    job_id: int
    root: bytes
    solver: PeerId


class Dispute(Message, tag="swarm.dispute"):
    job_id: int
    spec: str
    solver: PeerId
    root_solver: bytes
    root_verifier: bytes


class Resolved(Message, tag="swarm.resolved"):
    job_id: int
    solver_wins: bool
    reason: str
    rounds: int


QUERIES = (BisectionQuery, LeafQuery, IntervalQuery, StepQuery, OpQuery)


@dataclass
class Report:
    """What happened, for the summary and the tests."""

    committed: dict[int, bytes] = field(default_factory=dict)
    verified: list[int] = field(default_factory=list)
    verdicts: dict[int, Resolved] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    milestones: dict[str, trio.Event] = field(default_factory=dict)

    def reached(self, milestone: str) -> trio.Event:
        """The event of a milestone such as ``"verified-1"`` (created on first use)."""
        return self.milestones.setdefault(milestone, trio.Event())

    def say(self, who: str, text: str) -> None:
        line = f"{who:<10} {text}"
        self.lines.append(line)
        print(line, flush=True)


def spec_hash(spec: TaskSpec) -> bytes:
    return bytes.fromhex(spec.task_id)


# -- the roles ----------------------------------------------------------------------------------


class Submitter(Agent):
    """Escrows payment for jobs, posts them, assigns each to the first bidder."""

    def __init__(self, specs: list[TaskSpec], report: Report) -> None:
        super().__init__("submitter")
        self.specs, self.report = specs, report
        self.posted: dict[int, TaskSpec] = {}

    async def post_all(self) -> None:
        deadline = self.chain.block_timestamp() + 7200
        for spec in self.specs:
            payment = 20 * TOKEN
            job_id = self.chain.post_job(spec_hash(spec), payment, deadline).value
            self.posted[job_id] = spec
            self.report.say("submitter", f"job {job_id}: escrowed {payment / TOKEN:.0f} AI")
            await self.publish(
                MARKET, JobPosted(job_id=job_id, spec=spec.model_dump_json(), payment=payment)
            )

    @on(Bid)
    async def bid(self, message: Bid, ctx: Context) -> None:
        spec = self.posted.pop(message.job_id, None)
        if spec is None:
            return  # already assigned
        self.chain.assign(message.job_id, message.address)
        self.report.say("submitter", f"job {message.job_id}: assigned to {ctx.sender.short()}")
        await self.send(ctx.sender, JobAssigned(job_id=message.job_id, spec=spec.model_dump_json()))


class GameParty(Agent):
    """Answers the referee's Verde queries from its own run of each disputed job."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.parties: dict[str, Party] = {}  # by game id

    @on(*QUERIES)
    async def game_query(
        self,
        message: BisectionQuery | LeafQuery | IntervalQuery | StepQuery | OpQuery,
        ctx: Context,
    ) -> Message:
        party = self.parties.get(message.game_id)
        reply = party.respond(message) if party is not None else None
        if reply is None:
            raise RemoteError("no_answer", f"no answer for {message.axl_tag}")
        return reply


class Solver(GameParty):
    """Bids on posted jobs, trains assigned ones reproducibly, commits the trace root."""

    topics = (MARKET,)

    def __init__(
        self, name: str, report: Report, *, bid_delay: float, cheat: Cheat | None = None
    ) -> None:
        super().__init__(name)
        self.report, self.bid_delay, self.cheat = report, bid_delay, cheat

    @on(JobPosted)
    async def job_posted(self, message: JobPosted, ctx: Context) -> None:
        await trio.sleep(self.bid_delay)
        await self.send(ctx.sender, Bid(job_id=message.job_id, address=self.chain.address))

    @on(JobAssigned)
    async def job_assigned(self, message: JobAssigned, ctx: Context) -> None:
        spec = TaskSpec.parse(message.spec)
        party = await trio.to_thread.run_sync(lambda: Party("a", spec, cheat=self.cheat))
        self.parties[f"job-{message.job_id}"] = party
        self.chain.commit_result(message.job_id, party.root)
        self.report.committed[message.job_id] = party.root
        note = " (tampered with one step)" if self.cheat else ""
        root = party.root.hex()[:12]
        self.report.say(
            self.name, f"job {message.job_id}: trained {spec.steps} steps, root {root}…{note}"
        )
        await self.publish(
            MARKET, ResultCommitted(job_id=message.job_id, root=party.root, solver=self.peer_id)
        )


class Verifier(GameParty):
    """Re-runs every committed job; challenges a root it cannot reproduce."""

    topics = (MARKET,)

    def __init__(self, report: Report) -> None:
        super().__init__("verifier")
        self.report = report
        self.specs: dict[int, TaskSpec] = {}

    @on(JobPosted)
    async def job_posted(self, message: JobPosted, ctx: Context) -> None:
        self.specs[message.job_id] = TaskSpec.parse(message.spec)

    @on(ResultCommitted)
    async def result_committed(self, message: ResultCommitted, ctx: Context) -> None:
        spec = self.specs[message.job_id]
        party = await trio.to_thread.run_sync(lambda: Party("b", spec))
        if party.root == message.root:
            self.report.verified.append(message.job_id)
            self.report.reached(f"verified-{message.job_id}").set()
            self.report.say("verifier", f"job {message.job_id}: reproduced the root bit for bit")
            return
        self.parties[f"job-{message.job_id}"] = party
        self.chain.challenge(message.job_id, party.root)  # its own root, with a bond
        self.report.say("verifier", f"job {message.job_id}: root differs, challenged on chain")
        await self.send(
            "referee",
            Dispute(
                job_id=message.job_id,
                spec=spec.model_dump_json(),
                solver=message.solver,
                root_solver=message.root,
                root_verifier=party.root,
            ),
        )


class Referee(Agent):
    """Plays the Verde game between solver (side a) and verifier (side b) over the bus, then
    votes the verdict on chain as a staked referee (the majority of referee votes decides)."""

    def __init__(self, report: Report, *, query_timeout: float = 30.0) -> None:
        super().__init__("referee")
        self.report, self.query_timeout = report, query_timeout

    @on(Dispute)
    async def dispute(self, message: Dispute, ctx: Context) -> None:
        spec = TaskSpec.parse(message.spec)
        game_id = f"job-{message.job_id}"
        sides = {"a": message.solver, "b": ctx.sender}
        opened = ChallengeOpened(
            game_id=game_id,
            task_id=spec.task_id,
            root_a=message.root_solver,
            root_b=message.root_verifier,
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
        assert isinstance(verdict, Verdict)
        solver_wins = verdict.winner == "a"
        self.chain.vote(message.job_id, solver_wins)
        self.report.verdicts[message.job_id] = Resolved(
            job_id=message.job_id,
            solver_wins=solver_wins,
            reason=verdict.reason,
            rounds=verdict.rounds,
        )
        self.report.reached(f"verdict-{message.job_id}").set()
        loser = "verifier" if solver_wins else "solver"
        where = (
            f"step {verdict.step}, op {verdict.op_index} ({verdict.op})"
            if verdict.step
            else verdict.reason
        )
        self.report.say(
            "referee",
            f"job {message.job_id}: {loser} loses after {verdict.rounds} rounds at {where}; "
            f"recomputed {verdict.referee_ops} op; verdict voted on chain",
        )

    async def _ask(self, peer: PeerId, query: Message, replies: list[Message]) -> None:
        # Silence, an error reply, or a reply claiming to come from the other side all count as
        # no answer: the Deadline then makes the party that owes a reply lose.
        with suppress(RemoteError, TimeoutError):
            reply = await self.request(peer, query, timeout=self.query_timeout)
            if getattr(reply, "party", None) == getattr(query, "to", None):
                replies.append(reply)


# -- the run ------------------------------------------------------------------------------------


def small_spec(seed: int) -> TaskSpec:
    return TaskSpec(
        model=MLPModel(),
        optimizer=SGD(),
        steps=16,
        batch_size=8,
        seed=seed,
        checkpoint_interval=2,
    )


async def run(*, quiet: bool = False) -> tuple[Report, dict[str, int]]:
    report = Report()
    if quiet:
        report.say = lambda who, text: report.lines.append(f"{who:<10} {text}")  # type: ignore[method-assign]
    deployer = Chain.embedded()
    accounts = deployer.dev_accounts()
    names = ("submitter", "honest", "cheat", "verifier", "referee")
    chain = deployer.deploy(
        DeployParams(challenge_window=600, dispute_window=3600),
        {accounts[i + 1].address: 1_000 * TOKEN for i in range(len(names))},
    )
    wallets = {name: chain.with_account(accounts[i + 1]) for i, name in enumerate(names)}
    roles = {
        "honest": Role.SOLVER,
        "cheat": Role.SOLVER,
        "verifier": Role.VERIFIER,
        "referee": Role.REFEREE,
    }
    for name, role in roles.items():
        wallets[name].stake(role, 100 * TOKEN)
    supply_before = chain.total_supply()
    report.say(
        "chain", f"embedded EVM, chain id {chain.chain_id}; contracts deployed, agents staked"
    )

    specs = [small_spec(1), small_spec(2)]
    submitter = Submitter(specs, report)
    runtime = AgentRuntime(seed=b"swarm-demo")
    runtime.add(submitter, chain=wallets["submitter"])
    honest = runtime.add(Solver("honest", report, bid_delay=0.0), chain=wallets["honest"])
    cheat = Cheat("wrong_op", step=5, op=17)  # a wrong matmul in the backward pass
    cheater = runtime.add(
        Solver("cheat", report, bid_delay=0.05, cheat=cheat), chain=wallets["cheat"]
    )
    runtime.add(Verifier(report), chain=wallets["verifier"])
    runtime.add(Referee(report), chain=wallets["referee"])

    async with runtime:
        # Job 1 goes to the honest solver (first bid); job 2 to the cheat (posted after).
        submitter.specs = specs[:1]
        await submitter.post_all()
        with trio.fail_after(120):
            await report.reached("verified-1").wait()
        honest.bid_delay, cheater.bid_delay = 0.05, 0.0
        submitter.specs = specs[1:]
        await submitter.post_all()
        with trio.fail_after(300):
            await report.reached("verdict-2").wait()

    chain.advance_time(601)
    settled = wallets["submitter"].settle(1)
    burned = sum(event["amount"] for event in settled.named("FeeBurned"))
    report.say(
        "chain", f"job 1 settled after the challenge window: fee burned {burned / TOKEN:.2f} AI"
    )
    chain.advance_time(chain.dispute(2).end - chain.block_timestamp())
    outcome = chain.finalize(2)
    slashed = outcome.named("DisputeResolved")[0]["slashed"]
    for name in ("verifier", "referee"):
        chain.claim(2, wallets[name].address)
    report.say(
        "chain",
        f"job 2 dispute finalized: {outcome.value.name.lower()}, {slashed / TOKEN:.0f} AI of "
        "the cheat's stake slashed, submitter refunded, verifier rewarded",
    )
    figures = {
        "supply_before": supply_before,
        "supply_after": chain.total_supply(),
        "job1_status": int(chain.job(1).status),
        "job2_status": int(chain.job(2).status),
        "fee_burned": burned,
        **{f"balance_{name}": wallet.balance_of() for name, wallet in wallets.items()},
    }
    report.say(
        "chain",
        f"supply {supply_before / TOKEN:,.2f} → {figures['supply_after'] / TOKEN:,.2f} AI "
        f"(fee and half the slash burned); balances: "
        + ", ".join(f"{n} {figures[f'balance_{n}'] / TOKEN:,.2f}" for n in wallets),
    )
    assert chain.job(1).status is JobStatus.SETTLED
    return report, figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="AXL compute market, end to end")
    parser.parse_args(argv)
    trio.run(run)


if __name__ == "__main__":
    main()

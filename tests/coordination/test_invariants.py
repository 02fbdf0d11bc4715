"""Stateful property test: random sequences of honest and adversarial actions keep the
protocol's invariants and its economic guarantee.

Actors: an honest solver (commits the right root, keeps and reveals its batch trees), a cheat
(commits wrong roots, anchors junk batch roots and withholds the tree, tries to unbond the
stake its jobs lock), an honest verifier (attests honest results, challenges the cheat's with
the right root), a puppet challenger (challenges anything with a made-up root), two honest
referees and a lying one that votes after them (its stake may grow past theirs), and a
resolver that never acts (disputes nobody votes on are finalized after their window all the
same: undecided, the job refunded).

Invariants, after every step:
- supply = initial - burned, every burn a fee or a slash; escrow in = paid + refunded + fees
  + verifier fees + held; stake leaves staking only as Withdrawn or Slashed;
- every account's locked stake equals the open obligations the events imply (jobs, attests,
  unclaimed challenges and votes) and never exceeds its active stake;
- every vote locks and weighs min(free referee stake, 10 x minimum); the outcome follows the
  majority of the voting stake;
- the guarantee: while the honest referees hold the majority of a dispute's voting stake, the
  honest solver, verifier and referees lose no stake in it and no honest job is rejected (any
  honest loss comes from a dispute where the liar's stake outweighed them, and is at most what
  was locked there); every rejected job cost its solver at least its payment.

Each example runs from a chain snapshot and reverts it afterwards.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from coordination import (
    Action,
    Chain,
    ContractRevert,
    JobStatus,
    LedgerJob,
    MarketLedger,
    Outcome,
    ResultTree,
    Role,
)

from .conftest import TEST_PARAMS, Env
from .helpers import AI, h

ZERO = "0x" + "00" * 20
MIN = {
    Role.SOLVER: TEST_PARAMS.min_solver_stake,
    Role.VERIFIER: TEST_PARAMS.min_verifier_stake,
    Role.REFEREE: TEST_PARAMS.min_referee_stake,
}
PICK = st.integers(0, 10**6)


def right(job_id: int) -> bytes:
    return h(job_id + 10**9)


class MarketMachine(RuleBasedStateMachine):
    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.admin = env.admin
        self.snapshot = env.admin.snapshot()
        self.honest, self.cheat = env.solver, env.solver2
        self.verifier, self.puppet = env.verifier, env.outsider
        self.referees = [env.referee, env.referee2]
        self.liar = env.referee3
        self.stakers: list[tuple[Chain, Role]] = [
            (self.honest, Role.SOLVER),
            (self.cheat, Role.SOLVER),
            (self.verifier, Role.VERIFIER),
            (self.puppet, Role.VERIFIER),
            *((r, Role.REFEREE) for r in (*self.referees, self.liar)),
        ]
        self.market = env.admin.contract("JobMarket").address
        self.staking = env.admin.contract("Staking").address
        self.start = env.admin.block_number() + 1
        self.cursor = env.admin.event_cursor(self.start)
        self.ledger = MarketLedger()
        self.base_supply = env.admin.total_supply()
        self.base_market = env.admin.balance_of(self.market)
        self.base_staking = env.admin.balance_of(self.staking)
        self.staking_out = 0
        self.staking_burned = 0
        self.pools_in = 0  # slashed solver stake pooled in the market for challengers
        self.slashed: Counter[str] = Counter()
        self.claim_slashed: Counter[tuple[int, str]] = Counter()
        self.resolved: list[tuple[int, Outcome, int]] = []
        self.claimed: set[tuple[int, str]] = set()
        self.positions: dict[tuple[str, Role], list[int]] = {}
        for who, role in self.stakers:
            pos = who.stake_of(role)
            self.positions[(who.address, role)] = [pos.active, pos.unbonding, pos.release_at]
        self.trees: dict[int, ResultTree] = {}

    def teardown(self) -> None:
        try:
            if os.environ.get("AXL_STATS"):
                print(sorted(Counter(e.name for e in self.admin.events(self.start)).items()))
                print("outvoted disputes:", sum(map(self.outvoted, self.ledger.jobs.values())))
            self.positions_match_the_model()
        finally:
            self.admin.revert(self.snapshot)

    # --- helpers ------------------------------------------------------------------------------

    def now(self) -> int:
        """The timestamp the next transaction's block will have (blocks are 1 s apart)."""
        return self.admin.block_timestamp() + 1

    def jobs(self, *statuses: JobStatus) -> list[LedgerJob]:
        return [j for j in self.ledger.jobs.values() if j.status in statuses]

    def pick(self, index: int, jobs: list[LedgerJob]) -> LedgerJob | None:
        return jobs[index % len(jobs)] if jobs else None

    def free(self, who: Chain, role: Role) -> int:
        return self.positions[(who.address, role)][0] - self.expected_locks()[(who.address, role)]

    def expected_locks(self) -> dict[tuple[str, Role], int]:
        """Locked stake implied by the open obligations in the events."""
        locks: dict[tuple[str, Role], int] = defaultdict(int)
        live = (JobStatus.ASSIGNED, JobStatus.COMMITTED, JobStatus.DISPUTED)
        for job in self.ledger.jobs.values():
            if job.status in live and job.solver is not None:
                locks[(job.solver, Role.SOLVER)] += max(job.payment, MIN[Role.SOLVER])
            if job.status in (JobStatus.COMMITTED, JobStatus.DISPUTED):
                for attester in job.attesters:
                    locks[(attester, Role.VERIFIER)] += MIN[Role.VERIFIER]
            for challenger in job.challengers:
                if (job.job_id, challenger) not in self.claimed:
                    locks[(challenger, Role.VERIFIER)] += MIN[Role.VERIFIER]
            for referee, weight in job.vote_weights.items():
                if (job.job_id, referee) not in self.claimed:
                    locks[(referee, Role.REFEREE)] += weight
        return locks

    def expect_ok_or(self, error: str | None, action: object) -> object:
        assert callable(action)
        if error is None:
            return action()
        try:
            action()
        except ContractRevert as exc:
            assert exc.error == error, f"expected {error}, got {exc}"
            return None
        raise AssertionError(f"expected revert {error}")

    # --- staking ------------------------------------------------------------------------------

    @initialize(
        honest=st.integers(300, 600), cheat=st.integers(100, 400), liar=st.sampled_from([150, 600])
    )
    def initial_stakes(self, honest: int, cheat: int, liar: int) -> None:
        """Every actor starts staked and four jobs are posted, so that the job rules have
        material from the first step and disputes are reachable."""
        amounts = [honest, cheat, 300, 300, 200, 200, liar]  # a 600 liar outweighs both honest
        for (who, role), amount in zip(self.stakers, amounts, strict=True):
            who.stake(role, amount * AI)
            self.positions[(who.address, role)][0] += amount * AI
        self.fold_events()
        self.post(payment=100, solver=0, ttl=7200, count=2)
        self.post(payment=100, solver=1, ttl=7200, count=1)
        self.post(payment=1000, solver=None, ttl=7200, count=1)
        self.fold_events()
        for job in self.jobs(JobStatus.ASSIGNED):
            if job.solver == self.cheat.address:
                self.commit(job.job_id, batch=False)
                break
        for job in self.jobs(JobStatus.ASSIGNED):
            if job.solver == self.honest.address:
                self.commit(job.job_id, batch=True)
                break

    @rule(who=PICK, amount=st.integers(1, 300))
    def stake(self, who: int, amount: int) -> None:
        staker, role = self.stakers[who % len(self.stakers)]
        staker.stake(role, amount * AI)
        self.positions[(staker.address, role)][0] += amount * AI

    @rule(who=PICK, amount=st.integers(1, 400))
    def unbond(self, who: int, amount: int) -> None:
        """Anyone, the cheat included, tries to unbond: only free stake moves."""
        staker, role = self.stakers[who % len(self.stakers)]
        pos = self.positions[(staker.address, role)]
        if amount * AI > self.free(staker, role):
            self.expect_ok_or("InsufficientStake", lambda: staker.request_unbond(role, amount * AI))
            return
        pos[2] = staker.request_unbond(role, amount * AI).value
        pos[0] -= amount * AI
        pos[1] += amount * AI

    @rule(who=PICK)
    def withdraw(self, who: int) -> None:
        staker, role = self.stakers[who % len(self.stakers)]
        pos = self.positions[(staker.address, role)]
        if pos[1] == 0:
            self.expect_ok_or("NothingToWithdraw", lambda: staker.withdraw(role))
        elif self.now() < pos[2]:
            self.expect_ok_or("StillUnbonding", lambda: staker.withdraw(role))
        else:
            assert staker.withdraw(role).value == pos[1]
            pos[1], pos[2] = 0, 0

    @rule(seconds=st.sampled_from([60, 1800, 3600, 3 * 3600, 8 * 24 * 3600]))
    def advance(self, seconds: int) -> None:
        self.admin.advance_time(seconds)

    # --- posting and committing ---------------------------------------------------------------

    @rule(
        payment=st.integers(1, 2000),
        solver=st.sampled_from([None, 0, 1]),
        ttl=st.sampled_from([600, 7200]),
        count=st.sampled_from([1, 1, 3]),
    )
    def post(self, payment: int, solver: int | None, ttl: int, count: int) -> None:
        target = None if solver is None else (self.honest, self.cheat)[solver]
        deadline = self.admin.block_timestamp() + ttl
        amount = payment * AI // 10
        error = None
        if target is not None:
            need = count * max(amount, MIN[Role.SOLVER])
            error = "InsufficientStake" if need > self.free(target, Role.SOLVER) else None
        address = None if target is None else target.address
        hashes, amounts = [h(payment)] * count, [amount] * count
        self.expect_ok_or(
            error,
            lambda: self.env.submitter.post_jobs(hashes, amounts, deadline, address),
        )

    @precondition(lambda self: self.jobs(JobStatus.POSTED))
    @rule(index=PICK, solver=st.sampled_from([0, 1]))
    def assign(self, index: int, solver: int) -> None:
        job = self.pick(index, self.jobs(JobStatus.POSTED))
        assert job is not None
        target = (self.honest, self.cheat)[solver]
        if Action.ASSIGN not in job.actions(self.now(), self.env.submitter.address):
            error: str | None = "DeadlinePassed"
        elif max(job.payment, MIN[Role.SOLVER]) > self.free(target, Role.SOLVER):
            error = "InsufficientStake"
        else:
            error = None
        self.expect_ok_or(error, lambda: self.env.submitter.assign(job.job_id, target.address))

    @precondition(lambda self: self.jobs(JobStatus.ASSIGNED))
    @rule(index=PICK, batch=st.booleans())
    def commit(self, index: int, batch: bool) -> None:
        """The honest solver commits the right roots (keeping its batch trees); the cheat
        commits wrong roots alone, or a junk batch root whose tree it never publishes."""
        assigned = self.jobs(JobStatus.ASSIGNED)
        by_id = [j for j in assigned if j.job_id == index]
        job = by_id[0] if by_id else self.pick(index, assigned)
        assert job is not None and job.solver is not None
        solver = self.honest if job.solver == self.honest.address else self.cheat
        now = self.now()
        ready = [
            j.job_id
            for j in self.jobs(JobStatus.ASSIGNED)
            if j.solver == solver.address and j.deadline >= now
        ]
        if not ready:
            late = Action.COMMIT not in job.actions(now, solver.address)
            assert late
            self.expect_ok_or(
                "DeadlinePassed", lambda: solver.commit_result(job.job_id, right(job.job_id))
            )
            return
        honest = solver is self.honest
        if not batch:
            root = right(ready[0]) if honest else h(ready[0] + 3 * 10**9)
            solver.commit_result(ready[0], root)
        elif honest:
            tree = ResultTree((j, right(j)) for j in ready)
            self.trees[solver.commit_batch(tree).value] = tree
        else:
            market = solver.contract("JobMarket").functions
            solver.transact(market.commitBatch(ready, h(666)))

    # --- verification and disputes ------------------------------------------------------------

    def is_honest(self, job: LedgerJob) -> bool:
        return job.solver == self.honest.address

    def proof(self, job: LedgerJob) -> list[bytes]:
        return self.trees[job.batch_id].proof(job.job_id) if job.batch_id else []

    @precondition(lambda self: self.jobs(JobStatus.COMMITTED))
    @rule(index=PICK)
    def attest(self, index: int) -> None:
        """The verifier attests an honest result it checked (never the cheat's)."""
        jobs = [j for j in self.jobs(JobStatus.COMMITTED) if self.is_honest(j)]
        job = self.pick(index, jobs)
        if job is None:
            return
        ok = Action.ATTEST in job.actions(self.now(), self.verifier.address)
        if not ok or self.verifier.address in job.attesters or len(job.attesters) >= 3:
            return
        if self.free(self.verifier, Role.VERIFIER) < MIN[Role.VERIFIER]:
            return
        self.verifier.attest(job.job_id, right(job.job_id), self.proof(job))

    @precondition(lambda self: self.jobs(JobStatus.COMMITTED, JobStatus.DISPUTED))
    @rule(index=PICK, puppet=st.booleans())
    def challenge(self, index: int, puppet: bool) -> None:
        """The verifier challenges the cheat's results with the right root; the puppet
        challenges anything with a made-up root. An honest solver reveals a challenged batch
        leaf at once."""
        who = self.puppet if puppet else self.verifier
        jobs = self.jobs(JobStatus.COMMITTED, JobStatus.DISPUTED)
        if not puppet:
            jobs = [j for j in jobs if not self.is_honest(j)]
        job = self.pick(index, jobs)
        if job is None or Action.CHALLENGE not in job.actions(self.now(), who.address):
            return
        if self.free(who, Role.VERIFIER) < MIN[Role.VERIFIER]:
            return
        root = h(job.job_id + 5 * 10**9) if puppet else right(job.job_id)
        who.challenge(job.job_id, root)
        self.fold_events()
        if self.is_honest(job) and job.batch_id and job.revealed is None:
            self.honest.reveal(job.job_id, right(job.job_id), self.proof(job))

    @precondition(lambda self: self.jobs(JobStatus.DISPUTED))
    @rule(index=PICK, liar=st.booleans())
    def vote(self, index: int, liar: bool) -> None:
        """Honest referees vote the truth; the liar votes the opposite, after both of them."""
        disputed = self.jobs(JobStatus.DISPUTED)
        by_id = [j for j in disputed if j.job_id == index]
        job = by_id[0] if by_id else self.pick(index, disputed)
        assert job is not None
        if job.revealed is None:
            return
        truth = job.revealed == right(job.job_id)
        pending = [r for r in self.referees if r.address not in job.votes]
        referee = self.liar if liar and not pending else (pending[0] if pending else None)
        if referee is None or referee.address in job.votes:
            return
        if Action.VOTE not in job.actions(self.now(), referee.address):
            return
        free = self.free(referee, Role.REFEREE)
        if free < MIN[Role.REFEREE]:
            return
        referee.vote(job.job_id, truth if referee is not self.liar else not truth)
        self.fold_events()
        assert job.vote_weights[referee.address] == min(free, 10 * MIN[Role.REFEREE])

    @precondition(lambda self: self.jobs(JobStatus.DISPUTED))
    @rule(index=PICK)
    def finalize(self, index: int) -> None:
        """Anyone closes a dispute once its window is over, votes or none."""
        job = self.pick(index, self.jobs(JobStatus.DISPUTED))
        assert job is not None and job.dispute_end is not None
        if self.now() < job.dispute_end:
            self.expect_ok_or("DisputeOpen", lambda: self.puppet.finalize(job.job_id))
            return
        for_ = sum(job.vote_weights[r] for r, side in job.votes.items() if side)
        against = sum(job.vote_weights[r] for r, side in job.votes.items() if not side)
        if job.revealed is None or against > for_:
            expected = Outcome.SOLVER_LOSES
        elif for_ > against:
            expected = Outcome.SOLVER_WINS
        else:
            expected = Outcome.UNDECIDED
        receipt = self.puppet.finalize(job.job_id)
        assert receipt.value == expected
        slashed = receipt.named("DisputeResolved")[0]["slashed"]
        self.resolved.append((job.job_id, expected, slashed))

    @precondition(lambda self: self.jobs(JobStatus.COMMITTED))
    @rule(index=PICK, puppet=st.booleans(), votes=st.sampled_from([1, 2, 3, 0]))
    def dispute_round(self, index: int, puppet: bool, votes: int) -> None:
        """A whole dispute at once, so slashing paths are common: challenge, ``votes`` referee
        votes (0: the resolver never acts), the window passes, finalize, every claim."""
        self.challenge(index, puppet)
        self.fold_events()
        disputed = self.jobs(JobStatus.DISPUTED)
        if not disputed:
            return
        job = disputed[index % len(disputed)]
        for _ in range(votes):
            self.vote(job.job_id, votes == 3)
            self.fold_events()
        assert job.dispute_end is not None
        wait = job.dispute_end - self.now()
        if wait > 0:
            self.admin.advance_time(wait)
        self.finalize(disputed.index(job))
        self.fold_events()
        for who in (*job.challengers, *job.votes):
            if (job.job_id, who) not in self.claimed:
                self.puppet.claim(job.job_id, who)
                self.claimed.add((job.job_id, who))

    @precondition(lambda self: any(j.outcome != Outcome.OPEN for j in self.ledger.jobs.values()))
    @rule(index=PICK)
    def claim(self, index: int) -> None:
        owed = [
            (j.job_id, who)
            for j in self.ledger.jobs.values()
            if j.outcome != Outcome.OPEN
            for who in (*j.challengers, *j.votes)
            if (j.job_id, who) not in self.claimed
        ]
        if not owed:
            return
        job_id, who = owed[index % len(owed)]
        self.puppet.claim(job_id, who)
        self.claimed.add((job_id, who))

    # --- settling -----------------------------------------------------------------------------

    @precondition(lambda self: self.jobs(JobStatus.COMMITTED))
    @rule(batch=st.booleans())
    def settle(self, batch: bool) -> None:
        now = self.now()
        due = [j for j in self.jobs(JobStatus.COMMITTED) if now >= (j.challenge_end or 0)]
        ids = [j.job_id for j in self.ledger.jobs.values()]
        if batch:
            if not due:
                self.expect_ok_or("NothingToSettle", lambda: self.puppet.settle_batch(ids))
                return
            assert self.puppet.settle_batch(ids).value == len(due)
        elif due:
            self.puppet.settle(due[0].job_id)

    @precondition(lambda self: self.jobs(JobStatus.POSTED, JobStatus.ASSIGNED))
    @rule(index=PICK)
    def refund(self, index: int) -> None:
        job = self.pick(index, self.jobs(JobStatus.POSTED, JobStatus.ASSIGNED))
        assert job is not None
        early = Action.REFUND not in job.actions(self.now(), self.puppet.address)
        self.expect_ok_or(
            "DeadlineNotReached" if early else None, lambda: self.puppet.refund(job.job_id)
        )

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        self.fold_events()
        self.supply_is_initial_minus_burned()
        self.escrow_in_is_paid_refunded_fees_and_held()
        self.stake_leaves_only_by_withdrawal_or_slash()
        self.locks_match_open_obligations()
        self.honest_parties_never_lose()
        self.cheats_lose_more_than_they_could_gain()

    def fold_events(self) -> None:
        for event in self.cursor.poll():
            self.ledger.apply(event)
            if event.contract == "AIToken" and event.name == "Transfer":
                if event["from"] == self.staking and event["to"] != ZERO:
                    self.staking_out += event["value"]
                if event["from"] == self.staking and event["to"] == ZERO:
                    self.staking_burned += event["value"]
            if event.contract == "JobMarket" and event.name == "Claimed":
                self.claim_slashed[(event["jobId"], event["account"])] += event["slashed"]
            if event.contract == "Staking" and event.name == "Slashed":
                if event["beneficiary"] == self.market:
                    self.pools_in += event["reward"]
                self.slashed[event["account"]] += event["amount"]
                self.positions[(event["account"], Role(event["role"]))][0] -= event["amount"]

    def supply_is_initial_minus_burned(self) -> None:
        assert self.ledger.minted == 0
        assert self.admin.total_supply() == self.base_supply - self.ledger.burned
        assert self.ledger.burned == self.ledger.fees_burned + self.ledger.slash_burned

    def escrow_in_is_paid_refunded_fees_and_held(self) -> None:
        held = self.admin.balance_of(self.market) - self.base_market
        ledger = self.ledger
        assert ledger.escrow_held + self.pools_in - ledger.rewards == held
        assert ledger.fees == ledger.fees_burned

    def stake_leaves_only_by_withdrawal_or_slash(self) -> None:
        ledger = self.ledger
        assert self.admin.balance_of(self.staking) - self.base_staking == ledger.stake_held
        assert self.staking_out == ledger.withdrawn + ledger.slash_rewards
        assert self.staking_burned == ledger.slash_burned

    def locks_match_open_obligations(self) -> None:
        expected = self.expected_locks()
        for who, role in self.stakers:
            pos = self.admin.stake_of(role, who.address)
            assert pos.locked == expected[(who.address, role)], (who.address, role)
            assert pos.locked <= pos.active

    def outvoted(self, job: LedgerJob) -> bool:
        """Whether the honest-majority assumption failed in ``job``'s dispute: the liar locked
        more referee stake than the honest referees together."""
        honest = sum(job.vote_weights.get(r.address, 0) for r in self.referees)
        return job.vote_weights.get(self.liar.address, 0) > honest

    def honest_parties_never_lose(self) -> None:
        """Honest stake is slashed only in disputes where the liar outweighed the honest
        referees, and there by at most what was locked for that dispute."""
        jobs = self.ledger.jobs
        honest_parties = (self.honest, self.verifier, *self.referees)
        addresses = {p.address for p in honest_parties}
        allowed: Counter[str] = Counter()
        for (job_id, who), amount in self.claim_slashed.items():
            if amount and who in addresses:
                job = jobs[job_id]
                assert self.outvoted(job), (job, who, amount)
                if who in job.vote_weights:
                    assert amount <= job.vote_weights[who] + MIN[Role.VERIFIER]
                allowed[who] += amount
        for job in jobs.values():
            if self.is_honest(job) and job.status == JobStatus.REJECTED:
                assert self.outvoted(job), job
                allowed[self.honest.address] += max(job.payment, MIN[Role.SOLVER])
                for attester in job.attesters:
                    allowed[attester] += MIN[Role.VERIFIER]
        for honest in honest_parties:
            assert self.slashed[honest.address] == allowed[honest.address], honest.address

    def cheats_lose_more_than_they_could_gain(self) -> None:
        for job_id, outcome, slashed in self.resolved:
            if outcome == Outcome.SOLVER_LOSES:
                assert slashed >= self.ledger.jobs[job_id].payment

    def positions_match_the_model(self) -> None:
        """Only stake, unbond, withdraw and slash moved stake (checked once per example)."""
        for (address, role), (active, unbonding, _) in self.positions.items():
            pos = self.admin.stake_of(role, address)
            assert (pos.active, pos.unbonding) == (active, unbonding), (address, role)


RUNS = {"embedded": (5, 20), "anvil": (3, 16)}


def test_market_invariants(env: Env, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["env"]
    examples, steps = RUNS[backend]
    run_state_machine_as_test(
        # hypothesis documents any zero-argument factory; its annotation says a class
        lambda: MarketMachine(env),  # type: ignore[arg-type]
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            # Shrinking replays whole sequences against the chain: minutes, not seconds. A
            # failure is reported unshrunk (the step list is printed either way).
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )

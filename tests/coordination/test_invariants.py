"""Stateful property test: random sequences of stake / unbond / withdraw / post / assign /
commit / batch / challenge / resolve / settle / refund keep the protocol's invariants.

- supply = initial + minted - burned, and every burn is a fee or the burned part of a slash;
- escrow in = paid + refunded + fees + what the market still holds (its token balance);
- stake leaves the staking contract only as Withdrawn (after unbonding) or Slashed, and every
  account's position matches a model that only those two paths change.

Each example runs from a chain snapshot and reverts it afterwards.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

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
    Economics,
    JobStatus,
    LedgerJob,
    MarketLedger,
    ResultTree,
    Role,
)

from .conftest import TEST_PARAMS, Env
from .helpers import AI, h

ZERO = "0x" + "00" * 20
ECON = Economics(fee_bps=TEST_PARAMS.fee_bps, reward_share_bps=TEST_PARAMS.reward_share_bps)
MIN_STAKE = {
    Role.SOLVER: TEST_PARAMS.min_solver_stake,
    Role.VERIFIER: TEST_PARAMS.min_verifier_stake,
}
ROLES = st.sampled_from([Role.SOLVER, Role.VERIFIER])
PICK = st.integers(0, 10**6)


class MarketMachine(RuleBasedStateMachine):
    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.admin = env.admin
        self.snapshot = env.admin.snapshot()
        self.stakers = [env.solver, env.solver2, env.verifier]
        self.market = env.admin.contract("JobMarket").address
        self.staking = env.admin.contract("Staking").address
        self.start = env.admin.block_number() + 1
        self.cursor = env.admin.event_cursor(self.start)
        self.ledger = MarketLedger()
        self.base_supply = env.admin.total_supply()
        self.base_market = env.admin.balance_of(self.market)
        self.base_staking = env.admin.balance_of(self.staking)
        self.expected_burn = 0
        self.staking_out = 0  # tokens transferred out of staking to accounts
        self.staking_burned = 0
        self.positions: dict[tuple[str, Role], list[int]] = {}
        for who in self.stakers:
            for role in Role:
                pos = who.stake_of(role)
                self.positions[(who.address, role)] = [pos.active, pos.unbonding, pos.release_at]
        self.jobs: list[int] = []
        self.trees: dict[int, ResultTree] = {}

    def teardown(self) -> None:
        try:
            if os.environ.get("AXL_STATS"):
                print(sorted(Counter(e.name for e in self.admin.events(self.start)).items()))
            self.positions_match_the_model()
        finally:
            self.admin.revert(self.snapshot)

    # --- helpers ------------------------------------------------------------------------------

    def client(self, address: str | None) -> Chain:
        return next(c for c in self.env.actors if c.address == address)

    def pick(self, index: int, *statuses: JobStatus) -> LedgerJob | None:
        matching = [j for j in self.ledger.jobs.values() if j.status in statuses]
        return matching[index % len(matching)] if matching else None

    def now(self) -> int:
        """The timestamp the next transaction's block will have (blocks are 1 s apart)."""
        return self.admin.block_timestamp() + 1

    def expect(self, error: str | None, action: Any) -> Any:
        if error is None:
            return action()
        try:
            action()
        except ContractRevert as exc:
            assert exc.error == error, f"expected {error}, got {exc}"
            return None
        raise AssertionError(f"expected revert {error}")

    def take_slash(self, address: str, role: Role) -> int:
        pos = self.positions[(address, role)]
        want = MIN_STAKE[role]
        from_active = min(want, pos[0])
        from_unbonding = min(want - from_active, pos[1])
        pos[0] -= from_active
        pos[1] -= from_unbonding
        slashed = from_active + from_unbonding
        self.expected_burn += ECON.slash_split(slashed).burned
        return slashed

    # --- staking ------------------------------------------------------------------------------

    @initialize(
        solver=st.integers(100, 200), solver2=st.integers(0, 200), verifier=st.integers(100, 200)
    )
    def initial_stakes(self, solver: int, solver2: int, verifier: int) -> None:
        """Examples start with staked solvers, a verifier and four jobs, so that the job rules
        have material from the first step and disputes are reachable."""
        for who, role, amount in (
            (self.env.solver, Role.SOLVER, solver),
            (self.env.solver2, Role.SOLVER, solver2),
            (self.env.verifier, Role.VERIFIER, verifier),
        ):
            if amount:
                self.stake(self.stakers.index(who), role, amount)
        self.post(payment=solver, solver=0, ttl=7200, count=3)
        self.post(payment=verifier, solver=None, ttl=600, count=1)

    @rule(who=PICK, role=ROLES, amount=st.integers(1, 150))
    def stake(self, who: int, role: Role, amount: int) -> None:
        staker = self.stakers[who % len(self.stakers)]
        staker.stake(role, amount * AI)
        self.positions[(staker.address, role)][0] += amount * AI

    @rule(who=PICK, role=ROLES, amount=st.integers(1, 200))
    def unbond(self, who: int, role: Role, amount: int) -> None:
        staker = self.stakers[who % len(self.stakers)]
        pos = self.positions[(staker.address, role)]
        if amount * AI > pos[0]:
            self.expect("InsufficientStake", lambda: staker.request_unbond(role, amount * AI))
            return
        release = staker.request_unbond(role, amount * AI).value
        pos[0] -= amount * AI
        pos[1] += amount * AI
        pos[2] = release

    @rule(who=PICK, role=ROLES)
    def withdraw(self, who: int, role: Role) -> None:
        staker = self.stakers[who % len(self.stakers)]
        pos = self.positions[(staker.address, role)]
        if pos[1] == 0:
            self.expect("NothingToWithdraw", lambda: staker.withdraw(role))
        elif self.now() < pos[2]:
            self.expect("StillUnbonding", lambda: staker.withdraw(role))
        else:
            assert staker.withdraw(role).value == pos[1]
            pos[1], pos[2] = 0, 0

    @rule(seconds=st.sampled_from([60, 1800, 3600, 8 * 24 * 3600]))
    def advance(self, seconds: int) -> None:
        self.admin.advance_time(seconds)

    # --- jobs ---------------------------------------------------------------------------------

    @rule(
        payment=st.integers(1, 1000),
        solver=st.sampled_from([None, 0, 1]),
        ttl=st.sampled_from([600, 7200]),
        count=st.sampled_from([1, 1, 3]),
    )
    def post(self, payment: int, solver: int | None, ttl: int, count: int) -> None:
        target = None if solver is None else self.stakers[solver]
        deadline = self.admin.block_timestamp() + ttl
        amount = payment * AI // 10
        error = None
        if (
            target is not None
            and self.positions[(target.address, Role.SOLVER)][0] < MIN_STAKE[Role.SOLVER]
        ):
            error = "InsufficientStake"
        address = None if target is None else target.address

        def post() -> list[int]:
            if count == 1:
                return [self.env.submitter.post_job(h(payment), amount, deadline, address).value]
            hashes, amounts = [h(payment)] * count, [amount] * count
            return self.env.submitter.post_jobs(hashes, amounts, deadline, address).value

        ids = self.expect(error, post)
        self.jobs.extend(ids or [])

    def assign(self, index: int, solver: int) -> None:
        job = self.pick(index, JobStatus.POSTED)
        if job is None:
            return
        target = self.stakers[solver]
        error = None
        if Action.ASSIGN not in job.actions(self.now(), self.env.submitter.address):
            error = "DeadlinePassed"
        elif self.positions[(target.address, Role.SOLVER)][0] < MIN_STAKE[Role.SOLVER]:
            error = "InsufficientStake"
        self.expect(error, lambda: self.env.submitter.assign(job.job_id, target.address))

    def commit(self, index: int) -> None:
        job = self.pick(index, JobStatus.ASSIGNED)
        if job is None:
            return
        solver = self.client(job.solver)
        late = Action.COMMIT not in job.actions(self.now(), solver.address)
        self.expect(
            "DeadlinePassed" if late else None,
            lambda: solver.commit_result(job.job_id, h(job.job_id + 10**9)),
        )

    @precondition(lambda self: self.jobs)
    @rule(index=PICK, choice=st.integers(0, 3))
    def step_job(self, index: int, choice: int) -> None:
        """Move a live job on: assign/refund, commit/refund, settle/challenge, or resolve."""
        live = [
            j
            for j in self.ledger.jobs.values()
            if j.status
            in (JobStatus.POSTED, JobStatus.ASSIGNED, JobStatus.COMMITTED, JobStatus.DISPUTED)
        ]
        if not live:
            return
        status = live[index % len(live)].status
        if status == JobStatus.POSTED:
            if choice < 3:
                self.assign(index, choice % 2)
            else:
                self.refund(index)
        elif status == JobStatus.ASSIGNED:
            if choice < 3:
                self.commit(index)
            else:
                self.refund(index)
        elif status == JobStatus.COMMITTED:
            if choice == 0:
                self.settle(index)
            else:
                self.challenge(index, 1 if choice == 3 else 2)
        else:
            self.resolve(index, choice % 2 == 0)

    @precondition(lambda self: self.jobs)
    @rule(index=PICK, choice=st.integers(0, 3))
    def step_another_job(self, index: int, choice: int) -> None:
        """The same as step_job: a second rule doubles how often jobs move."""
        self.step_job(index, choice)

    @precondition(lambda self: self.jobs)
    @rule(solver=st.sampled_from([0, 1]))
    def commit_batch(self, solver: int) -> None:
        who = self.stakers[solver]
        now = self.now()
        ready = [
            j.job_id
            for j in self.ledger.jobs.values()
            if j.status == JobStatus.ASSIGNED and j.solver == who.address and j.deadline >= now
        ]
        if ready:
            tree = ResultTree((j, h(j + 10**9)) for j in ready)
            self.trees[who.commit_batch(tree).value] = tree

    def challenge(self, index: int, who: int) -> None:
        job = self.pick(index, JobStatus.COMMITTED)
        if job is None or job.challenge_end is None:
            return
        challenger = self.stakers[who]
        proof = self.trees[job.batch_id].proof(job.job_id) if job.batch_id else []
        error = None
        if Action.CHALLENGE not in job.actions(self.now(), challenger.address):
            closed = self.now() >= job.challenge_end
            error = "ChallengeWindowClosed" if closed else "SelfChallenge"
        elif self.positions[(challenger.address, Role.VERIFIER)][0] < MIN_STAKE[Role.VERIFIER]:
            error = "InsufficientStake"
        root = h(job.job_id + 10**9)
        self.expect(error, lambda: challenger.challenge(job.job_id, root, proof))

    def resolve(self, index: int, solver_wins: bool) -> None:
        job = self.pick(index, JobStatus.DISPUTED)
        if job is None or job.challenger is None or job.solver is None:
            return
        self.resolved(job, job.challenger, solver_wins)

    def resolved(self, job: LedgerJob, challenger: str, solver_wins: bool) -> None:
        """Submit the outcome of ``job``'s dispute and follow the slash in the model."""
        assert job.solver is not None
        slashed = self.admin.resolve_dispute(job.job_id, solver_wins).value
        if solver_wins:
            self.expected_burn += ECON.payout(job.payment).fee
            expected = self.take_slash(challenger, Role.VERIFIER)
        else:
            expected = self.take_slash(job.solver, Role.SOLVER)
        assert slashed == expected

    @precondition(lambda self: self.jobs)
    @rule(index=PICK, solver_wins=st.booleans())
    def dispute(self, index: int, solver_wins: bool) -> None:
        """Challenge a committed job and resolve it at once: makes slashing paths common."""
        job = self.pick(index, JobStatus.COMMITTED)
        verifier = self.env.verifier
        if job is None or Action.CHALLENGE not in job.actions(self.now(), verifier.address):
            return
        if self.positions[(verifier.address, Role.VERIFIER)][0] < MIN_STAKE[Role.VERIFIER]:
            return
        proof = self.trees[job.batch_id].proof(job.job_id) if job.batch_id else []
        verifier.challenge(job.job_id, h(job.job_id + 10**9), proof)
        self.resolved(job, verifier.address, solver_wins)

    def settle(self, index: int) -> None:
        job = self.pick(index, JobStatus.COMMITTED)
        if job is None or job.challenge_end is None:
            return
        early = Action.SETTLE not in job.actions(self.now(), self.env.outsider.address)
        self.expect(
            "ChallengeWindowOpen" if early else None, lambda: self.env.outsider.settle(job.job_id)
        )
        if not early:
            self.expected_burn += ECON.payout(job.payment).fee

    @precondition(lambda self: self.jobs)
    @rule()
    def settle_batch(self) -> None:
        now = self.now()
        due = [
            j
            for j in self.ledger.jobs.values()
            if j.status == JobStatus.COMMITTED and now >= (j.challenge_end or 0)
        ]
        if not due:
            self.expect("NothingToSettle", lambda: self.env.outsider.settle_batch(self.jobs))
            return
        assert self.env.outsider.settle_batch(self.jobs).value == len(due)
        self.expected_burn += sum(ECON.payout(v.payment).fee for v in due)

    def refund(self, index: int) -> None:
        job = self.pick(index, JobStatus.POSTED, JobStatus.ASSIGNED)
        if job is None:
            return
        early = Action.REFUND not in job.actions(self.now(), self.env.outsider.address)
        self.expect(
            "DeadlineNotReached" if early else None, lambda: self.env.outsider.refund(job.job_id)
        )

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        self.fold_events()
        self.supply_is_minted_minus_burned()
        self.escrow_in_is_paid_refunded_fees_and_held()
        self.stake_leaves_only_by_withdrawal_or_slash()

    def fold_events(self) -> None:
        for event in self.cursor.poll():
            self.ledger.apply(event)
            if event.contract == "AIToken" and event.name == "Transfer":
                if event["from"] == self.staking and event["to"] != ZERO:
                    self.staking_out += event["value"]
                if event["from"] == self.staking and event["to"] == ZERO:
                    self.staking_burned += event["value"]

    def supply_is_minted_minus_burned(self) -> None:
        assert self.ledger.minted == 0
        assert self.admin.total_supply() == self.base_supply - self.ledger.burned
        assert self.ledger.burned == self.expected_burn
        assert self.ledger.burned == self.ledger.fees_burned + self.ledger.slash_burned

    def escrow_in_is_paid_refunded_fees_and_held(self) -> None:
        held = self.admin.balance_of(self.market) - self.base_market
        ledger = self.ledger
        assert ledger.escrowed == ledger.paid + ledger.refunded + ledger.fees + held
        assert ledger.fees == ledger.fees_burned

    def stake_leaves_only_by_withdrawal_or_slash(self) -> None:
        ledger = self.ledger
        assert self.admin.balance_of(self.staking) - self.base_staking == ledger.stake_held
        assert self.staking_out == ledger.withdrawn + ledger.slash_rewards
        assert self.staking_burned == ledger.slash_burned

    def positions_match_the_model(self) -> None:
        """Only stake, unbond, withdraw and slash moved stake (checked once per example)."""
        for (address, role), (active, unbonding, _) in self.positions.items():
            pos = self.admin.stake_of(role, address)
            assert (pos.active, pos.unbonding) == (active, unbonding), (address, role)


RUNS = {"embedded": (8, 20), "anvil": (4, 16)}


def test_market_invariants(env: Env, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["env"]
    examples, steps = RUNS[backend]
    run_state_machine_as_test(
        lambda: MarketMachine(env),
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

"""Settlement rules and the event-sourced market ledger (sans-IO: no chain access).

``Economics`` reproduces the contracts' arithmetic (fee of a settled payment, split of a slash)
so an agent can price a job before sending anything. ``MarketLedger`` folds decoded
:class:`ChainEvent` s into job states and running totals; its invariants are the ones the
contracts must keep, and the test suite checks them against real chain state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from ._events import ChainEvent

MAX_BPS = 10_000
ZERO_ADDRESS = "0x" + "00" * 20
IDENTITY_DOMAIN = b"axl.identity.v1:"


class JobStatus(IntEnum):
    """A job's state in ``JobMarket`` (the contract's ``Status`` enum)."""

    NONE = 0
    POSTED = 1
    ASSIGNED = 2
    COMMITTED = 3
    DISPUTED = 4
    SETTLED = 5
    REFUNDED = 6
    REJECTED = 7


class Role(IntEnum):
    """A staking role (the contract's ``Staking.Role``)."""

    SOLVER = 0
    VERIFIER = 1
    REFEREE = 2


class Outcome(IntEnum):
    """A dispute's outcome (the contract's ``JobMarket.Outcome``): OPEN until finalized;
    STANDS when the referees reached no majority (the committed result stands, nobody slashed)."""

    OPEN = 0
    SOLVER_WINS = 1
    SOLVER_LOSES = 2
    STANDS = 3


class Action(StrEnum):
    """A job-market call an account can make on a job."""

    ASSIGN = "assign"
    CANCEL = "cancel"
    COMMIT = "commit"
    CHALLENGE = "challenge"
    ATTEST = "attest"
    SETTLE = "settle"
    REFUND = "refund"
    REVEAL = "reveal"
    VOTE = "vote"
    FINALIZE = "finalize"


@dataclass(frozen=True, slots=True)
class Payout:
    """How a settled payment splits: ``paid`` to the solver, ``fee`` burned, ``verifier_fee``
    shared by the job's attesters (0 when nobody attested)."""

    paid: int
    fee: int
    verifier_fee: int = 0


@dataclass(frozen=True, slots=True)
class SlashSplit:
    """How a slash splits: ``reward`` to the honest party, ``burned`` destroyed."""

    reward: int
    burned: int


@dataclass(frozen=True, slots=True)
class Economics:
    """The protocol's pricing parameters (defaults: 0.5% fee burned, 1% verifier fee to the
    attesters, 50% of a slash to the winner)."""

    fee_bps: int = 50
    reward_share_bps: int = 5_000
    verifier_fee_bps: int = 100

    def payout(self, payment: int, attested: bool = False) -> Payout:
        """The solver's pay, the burned fee and the attesters' fee of a settled ``payment``
        (each fee rounds down; the verifier fee only when someone attested)."""
        fee = payment * self.fee_bps // MAX_BPS
        verifier_fee = payment * self.verifier_fee_bps // MAX_BPS if attested else 0
        return Payout(paid=payment - fee - verifier_fee, fee=fee, verifier_fee=verifier_fee)

    def job_lock(self, payment: int, min_solver_stake: int) -> int:
        """The solver stake a job locks until it closes: max(minimum solver stake, payment),
        so a caught cheat always loses at least what it was to be paid."""
        return max(payment, min_solver_stake)

    def slash_split(self, slashed: int) -> SlashSplit:
        """The honest party's reward and the burned rest of ``slashed`` stake."""
        reward = slashed * self.reward_share_bps // MAX_BPS
        return SlashSplit(reward=reward, burned=slashed - reward)


def binding_message(chain_id: int, address: str) -> bytes:
    """The bytes a peer key signs to bind to ``address`` on ``chain_id``:
    ``b"axl.identity.v1:" || chain_id (32 bytes, big-endian) || address (20 bytes)``."""
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"an address has 20 bytes, got {len(raw)}")
    return IDENTITY_DOMAIN + chain_id.to_bytes(32, "big") + raw


@dataclass(slots=True)
class LedgerJob:
    """What the events say about one job."""

    job_id: int
    submitter: str
    payment: int
    spec_hash: bytes
    deadline: int
    status: JobStatus = JobStatus.POSTED
    solver: str | None = None
    result_root: bytes | None = None
    batch_id: int | None = None
    challenge_end: int | None = None
    dispute_end: int | None = None
    challengers: dict[str, bytes] = field(default_factory=dict)
    attesters: list[str] = field(default_factory=list)
    revealed: bytes | None = None
    votes: dict[str, bool] = field(default_factory=dict)
    outcome: Outcome = Outcome.OPEN

    def actions(self, now: int, account: str) -> frozenset[Action]:
        """The calls the market accepts on this job from ``account`` in a block stamped
        ``now``, as far as status, time and party decide. Not modelled here: free stake
        (solver, challenger, attester and referee locks), the attester cap, proofs, and a
        challenger's root equal to the solver's."""
        me = account.lower()
        is_submitter = me == self.submitter.lower()
        is_solver = self.solver is not None and me == self.solver.lower()
        challenged = me in (c.lower() for c in self.challengers)
        found: set[Action] = set()
        if self.status == JobStatus.POSTED and is_submitter:
            found.add(Action.CANCEL)
            if now <= self.deadline:
                found.add(Action.ASSIGN)
        if self.status in (JobStatus.POSTED, JobStatus.ASSIGNED) and now > self.deadline:
            found.add(Action.REFUND)
        if self.status == JobStatus.ASSIGNED and is_solver and now <= self.deadline:
            found.add(Action.COMMIT)
        open_window = self.challenge_end is not None and now < self.challenge_end
        if self.status == JobStatus.COMMITTED and self.challenge_end is not None:
            if not open_window:
                found.add(Action.SETTLE)
            elif not is_solver:
                found.add(Action.ATTEST)
        live = self.status in (JobStatus.COMMITTED, JobStatus.DISPUTED)
        if live and open_window and not is_solver and not challenged:
            found.add(Action.CHALLENGE)
        if self.status == JobStatus.DISPUTED and self.dispute_end is not None:
            if now >= self.dispute_end:
                found.add(Action.FINALIZE)
            else:
                if self.revealed is None and self.batch_id:
                    found.add(Action.REVEAL)
                elif not (is_solver or is_submitter or challenged or me in self._voters()):
                    found.add(Action.VOTE)
        return frozenset(found)

    def _voters(self) -> set[str]:
        return {v.lower() for v in self.votes}


@dataclass(slots=True)
class MarketLedger:
    """Job states and token flows, folded from decoded events (feed them in chain order).

    Totals: ``minted``/``burned`` (token Transfer from/to zero), ``escrowed``/``paid``/
    ``refunded``/``fees``/``verifier_fees``/``rewards`` (market; rewards are pool shares paid
    to challengers), ``staked``/``withdrawn``/``slashed`` (staking)."""

    jobs: dict[int, LedgerJob] = field(default_factory=dict)
    minted: int = 0
    burned: int = 0
    escrowed: int = 0
    paid: int = 0
    refunded: int = 0
    fees: int = 0
    verifier_fees: int = 0
    rewards: int = 0
    fees_burned: int = 0
    staked: int = 0
    withdrawn: int = 0
    slashed: int = 0
    slash_rewards: int = 0
    slash_burned: int = 0

    @property
    def escrow_held(self) -> int:
        """Escrow still in the market: in - paid - refunded - fees - verifier fees."""
        return self.escrowed - self.paid - self.refunded - self.fees - self.verifier_fees

    @property
    def stake_held(self) -> int:
        """Stake still in staking: staked - withdrawn - slashed (= the staking balance)."""
        return self.staked - self.withdrawn - self.slashed

    @property
    def supply(self) -> int:
        """Total supply implied by the events: minted - burned."""
        return self.minted - self.burned

    def apply(self, event: ChainEvent) -> None:
        """Fold one event in; events of other contracts and unknown names are ignored."""
        handler = _HANDLERS.get((event.contract, event.name))
        if handler is not None:
            handler(self, event)

    def extend(self, events: list[ChainEvent]) -> None:
        """Fold several events, in order."""
        for event in events:
            self.apply(event)

    # --- handlers -----------------------------------------------------------------------------

    def _transfer(self, e: ChainEvent) -> None:
        if e["from"] == ZERO_ADDRESS:
            self.minted += e["value"]
        if e["to"] == ZERO_ADDRESS:
            self.burned += e["value"]

    def _posted(self, e: ChainEvent) -> None:
        first = e["firstJobId"]
        solver = e["solver"] if e["solver"] != ZERO_ADDRESS else None
        status = JobStatus.POSTED if solver is None else JobStatus.ASSIGNED
        for i, (spec, payment) in enumerate(zip(e["specHashes"], e["payments"], strict=True)):
            job = LedgerJob(first + i, e["submitter"], payment, spec, e["deadline"], status, solver)
            self.jobs[first + i] = job
            self.escrowed += payment

    def _assigned(self, e: ChainEvent) -> None:
        job = self.jobs[e["jobId"]]
        job.solver = e["solver"]
        job.status = JobStatus.ASSIGNED

    def _committed(self, e: ChainEvent) -> None:
        job = self.jobs[e["jobId"]]
        job.result_root = e["resultRoot"]
        job.challenge_end = e["challengeEnd"]
        job.status = JobStatus.COMMITTED

    def _batch(self, e: ChainEvent) -> None:
        for job_id in e["jobIds"]:
            job = self.jobs[job_id]
            job.batch_id = e["batchId"]
            job.challenge_end = e["challengeEnd"]
            job.status = JobStatus.COMMITTED

    def _attested(self, e: ChainEvent) -> None:
        self.jobs[e["jobId"]].attesters.append(e["verifier"])

    def _challenged(self, e: ChainEvent) -> None:
        job = self.jobs[e["jobId"]]
        job.challengers[e["challenger"]] = e["resultRoot"]
        job.dispute_end = e["disputeEnd"]
        if job.batch_id is None:
            job.revealed = job.result_root
        job.status = JobStatus.DISPUTED

    def _revealed(self, e: ChainEvent) -> None:
        self.jobs[e["jobId"]].revealed = e["resultRoot"]

    def _voted(self, e: ChainEvent) -> None:
        self.jobs[e["jobId"]].votes[e["referee"]] = e["solverWins"]

    def _resolved(self, e: ChainEvent) -> None:
        self.jobs[e["jobId"]].outcome = Outcome(e["outcome"])

    def _claimed(self, e: ChainEvent) -> None:
        self.rewards += e["reward"]

    def _settled(self, e: ChainEvent) -> None:
        self.jobs[e["jobId"]].status = JobStatus.SETTLED
        self.paid += e["paid"]
        self.fees += e["fee"]
        self.verifier_fees += e["verifierFee"]

    def _refunded(self, e: ChainEvent) -> None:
        job = self.jobs[e["jobId"]]
        job.status = JobStatus.REJECTED if job.status == JobStatus.DISPUTED else JobStatus.REFUNDED
        self.refunded += e["amount"]

    def _fee_burned(self, e: ChainEvent) -> None:
        self.fees_burned += e["amount"]

    def _staked(self, e: ChainEvent) -> None:
        self.staked += e["amount"]

    def _withdrawn(self, e: ChainEvent) -> None:
        self.withdrawn += e["amount"]

    def _slashed(self, e: ChainEvent) -> None:
        self.slashed += e["amount"]
        self.slash_rewards += e["reward"]
        self.slash_burned += e["burned"]


_HANDLERS = {
    ("AIToken", "Transfer"): MarketLedger._transfer,
    ("JobMarket", "JobsPosted"): MarketLedger._posted,
    ("JobMarket", "JobAssigned"): MarketLedger._assigned,
    ("JobMarket", "ResultCommitted"): MarketLedger._committed,
    ("JobMarket", "BatchCommitted"): MarketLedger._batch,
    ("JobMarket", "Attested"): MarketLedger._attested,
    ("JobMarket", "Challenged"): MarketLedger._challenged,
    ("JobMarket", "ResultRevealed"): MarketLedger._revealed,
    ("JobMarket", "Voted"): MarketLedger._voted,
    ("JobMarket", "DisputeResolved"): MarketLedger._resolved,
    ("JobMarket", "Claimed"): MarketLedger._claimed,
    ("JobMarket", "JobSettled"): MarketLedger._settled,
    ("JobMarket", "JobRefunded"): MarketLedger._refunded,
    ("JobMarket", "FeeBurned"): MarketLedger._fee_burned,
    ("Staking", "Staked"): MarketLedger._staked,
    ("Staking", "Withdrawn"): MarketLedger._withdrawn,
    ("Staking", "Slashed"): MarketLedger._slashed,
}

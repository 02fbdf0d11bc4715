"""The client's plain data: deployment parameters, address books, receipts and read views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._artifacts import CONTRACTS
from ._economics import JobStatus, Outcome, Role
from ._errors import AddressBookError
from ._events import ChainEvent

T = TypeVar("T")

AI = 10**18

# Governance parameter name -> (contract, setter, fixed leading arguments).
PARAMETERS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "fee_bps": ("JobMarket", "setFeeBps", ()),
    "verifier_fee_bps": ("JobMarket", "setVerifierFeeBps", ()),
    "challenge_window": ("JobMarket", "setChallengeWindow", ()),
    "dispute_window": ("JobMarket", "setDisputeWindow", ()),
    "unbonding_delay": ("Staking", "setUnbondingDelay", ()),
    "reward_share_bps": ("Staking", "setRewardShareBps", ()),
    "min_solver_stake": ("Staking", "setMinStake", (int(Role.SOLVER),)),
    "min_verifier_stake": ("Staking", "setMinStake", (int(Role.VERIFIER),)),
    "min_referee_stake": ("Staking", "setMinStake", (int(Role.REFEREE),)),
}


class DeployParams(BaseModel):
    """Initial protocol parameters, validated against the contracts' bounds (governance can
    change the market/staking ones later, within the same bounds, through the timelock)."""

    model_config = ConfigDict(frozen=True)

    fee_bps: int = Field(50, ge=0, le=1_000)
    verifier_fee_bps: int = Field(100, ge=0, le=500)
    challenge_window: int = Field(3600, ge=600, le=30 * 24 * 3600)
    dispute_window: int = Field(24 * 3600, ge=3600, le=30 * 24 * 3600)
    unbonding_delay: int = Field(7 * 24 * 3600, ge=24 * 3600, le=90 * 24 * 3600)
    reward_share_bps: int = Field(5_000, ge=0, le=5_000)
    min_solver_stake: int = Field(100 * AI, ge=10**15, le=10**27)
    min_verifier_stake: int = Field(100 * AI, ge=10**15, le=10**27)
    min_referee_stake: int = Field(100 * AI, ge=10**15, le=10**27)
    voting_delay: int = Field(1, ge=0, le=2**48 - 1)
    voting_period: int = Field(20, ge=1, le=2**32 - 1)
    proposal_threshold: int = Field(100 * AI, ge=1)
    quorum_percent: int = Field(4, ge=1, le=100)
    timelock_delay: int = Field(2 * 24 * 3600, ge=1, le=30 * 24 * 3600)
    """Seconds a passed proposal waits in the timelock before it can execute."""


class AddressBook(BaseModel):
    """Where a deployment lives: chain id, contract addresses, deployment block, parameters."""

    model_config = ConfigDict(frozen=True)

    chain_id: int
    contracts: dict[str, str]
    block_number: int
    params: DeployParams

    def save(self, path: str | Path) -> None:
        """Write the address book as JSON."""
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> AddressBook:
        """Read an address book; raises :class:`AddressBookError` when missing or malformed."""
        try:
            book = cls.model_validate_json(Path(path).read_text())
        except (OSError, ValidationError) as exc:
            raise AddressBookError(f"cannot read address book {path}: {exc}") from exc
        missing = [name for name in CONTRACTS if name not in book.contracts]
        if missing:
            raise AddressBookError(f"address book {path} lacks {', '.join(missing)}")
        return book


@dataclass(frozen=True, slots=True)
class Receipt(Generic[T]):
    """A mined, successful transaction: gas used, decoded events, and the call's result."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    events: tuple[ChainEvent, ...]
    value: T

    def named(self, name: str) -> list[ChainEvent]:
        """The events called ``name`` (e.g. ``"JobSettled"``)."""
        return [e for e in self.events if e.name == name]


def with_value(receipt: Receipt[object], value: T) -> Receipt[T]:
    """``receipt`` carrying ``value``."""
    return Receipt(receipt.tx_hash, receipt.block_number, receipt.gas_used, receipt.events, value)


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as stored in ``JobMarket`` (addresses None when unset). The contract keeps one
    time field: the commit ``deadline`` while no result is committed (None afterwards; the
    ``JobsPosted`` event keeps it), and ``challenge_end`` once one is (None before). The spec
    hash is not stored on chain: it is in the ``JobsPosted`` event. ``result_root`` is set for a
    job committed alone; ``lock`` is the solver stake locked for the job."""

    job_id: int
    status: JobStatus
    submitter: str | None
    solver: str | None
    payment: int
    result_root: bytes | None
    deadline: int | None
    challenge_end: int | None
    batch_id: int
    group_id: int
    lock: int
    attesters: int


@dataclass(frozen=True, slots=True)
class DisputeView:
    """A job's dispute: ``end`` (0 when never challenged), the outcome, the solver's result
    root once known (committed alone, or revealed), challenger and vote counts, the bond each
    challenger and referee locked, and the challengers' reward pool."""

    end: int
    outcome: Outcome
    revealed: bool
    challengers: int
    votes_for_solver: int
    votes_against_solver: int
    bond: int
    referee_lock: int
    solver_root: bytes | None
    pool: int


@dataclass(frozen=True, slots=True)
class StakePosition:
    """An account's stake for one role; ``active`` includes ``locked`` (stake held by open
    jobs, challenges, attestations and votes, which cannot be unbonded)."""

    active: int
    unbonding: int
    release_at: int
    locked: int = 0

    @property
    def free(self) -> int:
        """Active stake not locked: what can be unbonded or locked by a new obligation."""
        return self.active - self.locked


@dataclass(frozen=True, slots=True)
class ProtocolParams:
    """The governable parameters as currently on chain."""

    fee_bps: int
    verifier_fee_bps: int
    challenge_window: int
    dispute_window: int
    unbonding_delay: int
    reward_share_bps: int
    min_solver_stake: int
    min_verifier_stake: int
    min_referee_stake: int

"""The compute market's messages (tags ``market.*``). The flow of one job is in
docs/market.md: offer, post, bid, assign, commit, verify, challenge, verdict, settle.

Amounts are token base units (10**18 per AI), times are chain time (seconds), addresses are
0x-prefixed checksummed hex strings. Every field is bounded, so a hostile message fails
validation (and is dropped by the bus) instead of reaching a handler.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from axl import Message

MARKET_TOPIC = "market.jobs"
"""The topic offers, posted jobs, commitments, verdicts and settlements are published on."""

Amount = Annotated[int, Field(ge=0, lt=2**256)]
JobId = Annotated[int, Field(ge=1, lt=2**256)]
Hash32 = Annotated[bytes, Field(min_length=32, max_length=32)]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
ChainTime = Annotated[int, Field(ge=0, lt=2**64)]
Bps = Annotated[int, Field(ge=0, le=10_000)]
PeerText = Annotated[str, Field(min_length=1, max_length=128)]
BlobText = Annotated[str, Field(max_length=128)]

_SPEC_MAX = 64 * 1024


class ComputeOffer(Message, tag="market.offer"):
    """A solver announces what it sells: ``capacity`` jobs at once, ``price_per_step`` per
    training step, the model kinds it trains and the stake behind it."""

    address: Address
    capacity: int = Field(ge=1, le=4096)
    price_per_step: Amount
    kinds: list[Annotated[str, Field(max_length=32)]] = Field(max_length=16)
    stake: Amount


class JobPosted(Message, tag="market.job_posted"):
    """A submitter escrowed ``payment`` on chain for job ``job_id``; solvers bid on it.

    ``spec`` is the task spec as JSON (its SHA-256 is ``spec_hash``, also on chain);
    ``spec_uri`` names where to fetch it instead when it is too big to inline. ``deadline``
    is the chain time by which a result must be committed. ``sample_bps`` asks verifiers to
    check this share of such jobs (at least)."""

    job_id: JobId
    spec_hash: Hash32
    spec: str = Field(default="", max_length=_SPEC_MAX)
    spec_uri: str = Field(default="", max_length=512)
    kind: str = Field(max_length=32)
    steps: int = Field(ge=1, le=2**32)
    payment: Amount
    deadline: ChainTime
    sample_bps: Bps = 10_000


class Bid(Message, tag="market.bid"):
    """A solver's offer to run ``job_id`` (sent to the submitter). The submitter checks that
    ``address`` is bound on chain to the sender's peer id and holds solver stake."""

    job_id: JobId
    address: Address
    price: Amount
    stake: Amount


class JobAssigned(Message, tag="market.job_assigned"):
    """The submitter assigned ``job_id`` on chain to the receiving solver; here is the spec.
    ``holders`` are peers besides the submitter that serve the spec's dataset blob (peer ids,
    base58); every chunk is checked against the blob id, so they need no trust."""

    job_id: JobId
    spec: str = Field(max_length=_SPEC_MAX)
    deadline: ChainTime
    holders: list[PeerText] = Field(default_factory=list, max_length=8)


class JobTaken(Message, tag="market.job_taken"):
    """The submitter assigned ``job_id`` (published, so losing bidders free their slot)."""

    job_id: JobId


class ResultCommitted(Message, tag="market.result_committed"):
    """A solver anchored its result ``root`` for ``job_id`` on chain: alone (``batch_id`` 0,
    empty ``proof``) or in batch ``batch_id`` (``proof`` is the job's Merkle proof).

    For a job on a dataset, ``weights`` is the blob id of the trained weights the solver
    offers and ``weights_proof`` the final checkpoint leaf's proof under ``root``
    (``compute.verify_weights`` binds the blob to the root); empty otherwise."""

    job_id: JobId
    root: Hash32
    batch_id: int = Field(ge=0, lt=2**32)
    proof: list[Hash32] = Field(default_factory=list, max_length=64)
    challenge_end: ChainTime
    weights: BlobText = ""
    weights_proof: list[Hash32] = Field(default_factory=list, max_length=64)


class VerifyRequest(Message, tag="market.verify_request"):
    """Ask a verifier to check ``job_id`` whatever its sampling says (the reply is
    :class:`Verified`)."""

    job_id: JobId


class Verified(Message, tag="market.verified"):
    """A verifier's answer to :class:`VerifyRequest`: whether it reproduced the root (None
    when it has not seen the job's commitment yet)."""

    job_id: JobId
    reproduced: bool | None


class Challenge(Message, tag="market.challenge"):
    """A verifier challenged ``job_id`` on chain and tells the referee its own trace root and
    the spec. The referee takes the parties, the solver's root and the spec hash from the
    chain, never from this message; the spec must hash to the chain's spec hash."""

    job_id: JobId
    challenger_root: Hash32
    spec: str = Field(max_length=_SPEC_MAX)


Outcome = Literal["solver_wins", "challenger_wins", "undecided"]
"""A finalized dispute's outcome on chain: the referees' majority for the solver or against it,
or no majority (no votes, a tie): undecided, the submitter is refunded, every lock returns and
nobody is slashed or paid."""


class Verdict(Message, tag="market.verdict"):
    """A dispute was finalized on chain (published on the market topic by whoever finalized
    it, normally the referee): the chain's ``outcome``, the referee's reason, the game rounds
    it played and the stake slashed (solver lock, attesters, wrong challengers, referees)."""

    job_id: JobId
    outcome: Outcome
    reason: str = Field(max_length=256)
    rounds: int = Field(ge=0, le=10_000)
    slashed: Amount


class Settled(Message, tag="market.settled"):
    """Jobs paid out (``refunded`` False) or refunded to their submitter, on chain."""

    job_ids: list[JobId] = Field(max_length=4096)
    refunded: bool = False

"""The compute market as library roles: :class:`Submitter`, :class:`Solver`,
:class:`Verifier` and :class:`Referee` agents, their typed configs, the market's messages and
its sans-IO policies. See docs/market.md for the flow of one job.

Unlike the core ``agents`` modules (which import only ``axl``), this subpackage imports
``compute`` and ``coordination``; every chain call goes through :class:`MarketChain`.
"""

from ._base import QUERIES, TOKEN, GameParty, MarketAgent, Narrator, game_id
from ._chain import Commitment, DisputeRecord, MarketChain, spec_hash
from ._local import LOCAL_PARAMS, LocalMarket
from ._messages import (
    MARKET_TOPIC,
    Bid,
    Challenge,
    ComputeOffer,
    JobAssigned,
    JobPosted,
    JobTaken,
    Outcome,
    ResultCommitted,
    Settled,
    Verdict,
    Verified,
    VerifyRequest,
)
from ._policies import (
    Batcher,
    BatchPolicy,
    Candidate,
    SelectionPolicy,
    TimeoutPolicy,
    VerifyPolicy,
)
from ._progress import MarketProgress
from ._referee import CaseOutcome, Referee, RefereeConfig, outcome_of, vote_of
from ._solver import Solver
from ._solver_state import SolverConfig, SolverJob
from ._submitter import Submitter
from ._submitter_state import SubmitterConfig, Ticket
from ._verifier import Verifier, VerifierConfig

__all__ = [
    "LOCAL_PARAMS",
    "MARKET_TOPIC",
    "QUERIES",
    "TOKEN",
    "BatchPolicy",
    "Batcher",
    "Bid",
    "Candidate",
    "CaseOutcome",
    "Challenge",
    "Commitment",
    "ComputeOffer",
    "DisputeRecord",
    "GameParty",
    "JobAssigned",
    "JobPosted",
    "JobTaken",
    "LocalMarket",
    "MarketAgent",
    "MarketChain",
    "MarketProgress",
    "Narrator",
    "Outcome",
    "Referee",
    "RefereeConfig",
    "ResultCommitted",
    "SelectionPolicy",
    "Settled",
    "Solver",
    "SolverConfig",
    "SolverJob",
    "Submitter",
    "SubmitterConfig",
    "Ticket",
    "TimeoutPolicy",
    "Verdict",
    "Verified",
    "Verifier",
    "VerifierConfig",
    "VerifyPolicy",
    "VerifyRequest",
    "game_id",
    "outcome_of",
    "spec_hash",
    "vote_of",
]

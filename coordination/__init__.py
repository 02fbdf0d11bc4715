"""AXL coordination layer: the contracts on an EVM rollup and the ``Chain`` client.

``Chain.embedded()`` starts an in-process EVM; ``Chain.connect(url)`` uses any JSON-RPC node.
``chain.deploy()`` deploys the AI token, staking, identity registry, job market, timelock and
governor, and hands every role to the timelock.
Settlement arithmetic (``Economics``), batch Merkle trees (``ResultTree``) and the event-sourced
``MarketLedger`` are sans-IO. Every error is a ``CoordinationError``.
"""

from ._anvil import anvil_node, find_anvil
from ._artifacts import CONTRACTS, Artifact, artifact
from ._chain import Chain
from ._economics import (
    Action,
    Economics,
    JobStatus,
    LedgerJob,
    MarketLedger,
    Outcome,
    Payout,
    Role,
    SlashSplit,
    binding_message,
)
from ._errors import (
    AddressBookError,
    ChainUnavailable,
    ContractRevert,
    CoordinationError,
    DevOnly,
    InsufficientFunds,
    InsufficientStake,
    InsufficientTokens,
    InvalidIdentityBinding,
    NonceConflict,
    NotDeployed,
    TransactionError,
    Unauthorized,
    WrongChain,
)
from ._eventlog import EventCursor
from ._events import ChainEvent
from ._merkle import ResultTree, result_leaf, verify_result
from ._translate import decode_revert_data
from ._types import (
    PARAMETERS,
    AddressBook,
    DeployParams,
    DisputeView,
    JobView,
    ProtocolParams,
    Receipt,
    StakePosition,
)

__all__ = [
    "CONTRACTS",
    "PARAMETERS",
    "Action",
    "AddressBook",
    "AddressBookError",
    "Artifact",
    "Chain",
    "ChainEvent",
    "ChainUnavailable",
    "ContractRevert",
    "CoordinationError",
    "DeployParams",
    "DevOnly",
    "DisputeView",
    "Economics",
    "EventCursor",
    "InsufficientFunds",
    "InsufficientStake",
    "InsufficientTokens",
    "InvalidIdentityBinding",
    "JobStatus",
    "JobView",
    "LedgerJob",
    "MarketLedger",
    "NonceConflict",
    "NotDeployed",
    "Outcome",
    "Payout",
    "ProtocolParams",
    "Receipt",
    "ResultTree",
    "Role",
    "SlashSplit",
    "StakePosition",
    "TransactionError",
    "Unauthorized",
    "WrongChain",
    "anvil_node",
    "artifact",
    "binding_message",
    "decode_revert_data",
    "find_anvil",
    "result_leaf",
    "verify_result",
]

"""The public API of ``coordination`` is pinned, documented, and rooted in one error."""

from __future__ import annotations

import coordination
from axl import AxlError
from coordination import CoordinationError

EXPECTED = {
    "CONTRACTS", "PARAMETERS", "Action", "AddressBook", "AddressBookError", "Artifact", "Chain",
    "ChainEvent", "ChainUnavailable", "ContractRevert", "CoordinationError", "DeployParams",
    "DevOnly", "DisputeView", "Economics", "EventCursor", "InsufficientFunds", "InsufficientStake",
    "InsufficientTokens", "InvalidIdentityBinding", "JobStatus", "JobView", "LedgerJob",
    "MarketLedger", "NonceConflict", "NotDeployed", "Outcome", "Payout", "ProtocolParams",
    "Receipt",
    "ResultTree", "Role", "SlashSplit", "StakePosition", "TransactionError", "Unauthorized",
    "WrongChain", "anvil_node", "artifact", "binding_message", "decode_revert_data",
    "find_anvil", "result_leaf", "verify_result",
}  # fmt: skip


def test_public_names_are_pinned() -> None:
    assert set(coordination.__all__) == EXPECTED


def test_public_names_have_docstrings() -> None:
    for name in coordination.__all__:
        obj = getattr(coordination, name)
        if callable(obj):
            assert obj.__doc__, name


def test_one_error_hierarchy() -> None:
    assert issubclass(CoordinationError, AxlError)
    for name in coordination.__all__:
        obj = getattr(coordination, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, CoordinationError), name

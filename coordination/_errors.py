"""The exception hierarchy of ``coordination``, rooted at :class:`CoordinationError`.

Reverts are decoded from the contracts' custom errors (the ABIs ship in ``artifacts/``) into
:class:`ContractRevert` or, for the errors callers branch on, one of its typed subclasses.
"""

from __future__ import annotations

from typing import Any

from axl import AxlError


class CoordinationError(AxlError):
    """Base class of every error raised by ``coordination``."""


class ChainUnavailable(CoordinationError):
    """The JSON-RPC endpoint cannot be reached (after the retries that are safe)."""


class WrongChain(CoordinationError):
    """The node's chain id differs from the one expected (address book or caller)."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(
            f"connected to chain id {actual}, expected {expected}: "
            "check the RPC URL or the address book"
        )
        self.expected = expected
        self.actual = actual


class AddressBookError(CoordinationError):
    """An address book is missing, malformed, or lacks a contract; redeploy or fix the file."""


class NotDeployed(AddressBookError):
    """The client has no deployment bound: call ``Chain.deploy`` or pass an address book."""


class DevOnly(CoordinationError):
    """A dev-node helper (snapshot, time travel, funding) was used on a node without it."""


class InvalidIdentityBinding(CoordinationError):
    """The peer key's signature over (address, chain id) does not verify; nothing was sent."""


class TransactionError(CoordinationError):
    """A transaction could not be sent or did not succeed."""


class InsufficientFunds(TransactionError):
    """The sender cannot pay: too little ETH for gas, or too few AI tokens / allowance."""


class NonceConflict(TransactionError):
    """The node rejected the nonce (another sender used this account). The local nonce was
    resynchronised; check the account's state, then send again."""


class ContractRevert(TransactionError):
    """A call reverted; ``error`` is the decoded custom error name, ``args`` its arguments."""

    def __init__(self, error: str, args: tuple[Any, ...], detail: str = "") -> None:
        shown = ", ".join(_show(a) for a in args)
        super().__init__(f"reverted with {error}({shown}){': ' + detail if detail else ''}")
        self.error = error
        self.args_ = args

    @property
    def arguments(self) -> tuple[Any, ...]:
        """The decoded arguments of the custom error."""
        return self.args_


class InsufficientStake(ContractRevert):
    """The account lacks the active stake its role needs (``InsufficientStake``)."""


class InsufficientTokens(ContractRevert, InsufficientFunds):
    """Too few AI tokens or too small an allowance (``ERC20InsufficientBalance/Allowance``)."""


class Unauthorized(ContractRevert):
    """The sender lacks the role or is not the party the call needs (submitter, solver)."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value) if isinstance(value, str) else str(value)


REVERT_CLASSES: dict[str, type[ContractRevert]] = {
    "InsufficientStake": InsufficientStake,
    "ERC20InsufficientBalance": InsufficientTokens,
    "ERC20InsufficientAllowance": InsufficientTokens,
    "AccessControlUnauthorizedAccount": Unauthorized,
    "NotSubmitter": Unauthorized,
    "NotSolver": Unauthorized,
}

"""Failures of web3, eth-tester and JSON-RPC nodes mapped onto the typed
:class:`CoordinationError` hierarchy; a revert's custom error decoded from the contracts' ABIs."""

from __future__ import annotations

import ast
import json

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address

from ._artifacts import error_table
from ._errors import (
    REVERT_CLASSES,
    ChainUnavailable,
    ContractRevert,
    CoordinationError,
    InsufficientFunds,
    NonceConflict,
    TransactionError,
)


def decode_revert_data(data: bytes, detail: str = "") -> ContractRevert:
    """The typed error of revert ``data`` (a 4-byte selector and ABI-encoded arguments)."""
    entry = error_table().get(bytes(data[:4]))
    if entry is None:
        return ContractRevert("unknown", (bytes(data),), detail or "selector not in any ABI")
    try:
        args = tuple(
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(
                entry.types, abi_decode(list(entry.types), bytes(data[4:])), strict=True
            )
        )
    except Exception:
        return ContractRevert(entry.name, (bytes(data),), "arguments did not decode")
    cls = REVERT_CLASSES.get(entry.name, ContractRevert)
    return cls(entry.name, args, detail)


def _revert_bytes(text: str) -> bytes | None:
    if text.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return None
    return None


def translate(exc: Exception) -> CoordinationError:
    """Map a web3 / eth-tester / JSON-RPC failure onto the typed hierarchy."""
    import requests

    if isinstance(exc, CoordinationError):
        return exc
    if isinstance(exc, requests.Timeout):
        return ChainUnavailable(f"JSON-RPC node did not answer in time: {exc}")
    if isinstance(exc, requests.ConnectionError):
        return ChainUnavailable(f"JSON-RPC node unreachable: {exc}")
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        return decode_revert_data(bytes.fromhex(data[2:]))
    text = str(exc.args[0]) if exc.args else str(exc)
    if isinstance(exc.args[0] if exc.args else None, dict):
        text = json.dumps(exc.args[0])
    if "execution reverted" in text:
        tail = text.split("execution reverted", 1)[1].lstrip(": ")
        raw = _revert_bytes(tail)
        if raw is not None and len(raw) >= 4:
            return decode_revert_data(raw)
        return ContractRevert("Error", (tail,)) if tail else ContractRevert("revert", ())
    lowered = text.lower()
    if "cannot afford" in lowered or "insufficient funds" in lowered:
        return InsufficientFunds(f"not enough ETH for gas and value: {text}")
    if "nonce" in lowered:
        return NonceConflict(f"nonce rejected, local nonce resynchronised: {text}")
    return TransactionError(f"{type(exc).__name__}: {text}")

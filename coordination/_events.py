"""Decoded contract events: the source of truth agents fold into their view of the market."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One decoded log. ``contract`` is the address-book name (``"JobMarket"``), ``name`` the
    event name, ``args`` its decoded arguments (addresses as checksum strings, bytes32 as bytes)."""

    contract: str
    name: str
    args: Mapping[str, Any]
    block_number: int
    tx_hash: bytes
    log_index: int

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

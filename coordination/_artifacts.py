"""The compiled contracts shipped in ``coordination/artifacts`` and their error/event tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_utils.crypto import keccak

CONTRACTS = ("AIToken", "Staking", "JobMarket", "IdentityRegistry", "AXLTimelock", "AXLGovernor")


@dataclass(frozen=True)
class Artifact:
    """ABI and creation bytecode of one contract, as written by scripts/compile_contracts.mjs."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    solc: str


@cache
def artifact(name: str) -> Artifact:
    """The artifact of contract ``name``; raises KeyError for an unknown name."""
    if name not in CONTRACTS:
        raise KeyError(f"no artifact for {name!r}; known: {', '.join(CONTRACTS)}")
    text = resources.files("coordination").joinpath("artifacts", f"{name}.json").read_text()
    data = json.loads(text)
    return Artifact(name, data["abi"], data["bytecode"], data["compiler"]["solc"])


def _canonical(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_canonical(p) for p in entry['inputs'])})"


@cache
def event_topics(name: str) -> dict[bytes, str]:
    """Topic 0 -> event name, for the events of contract ``name`` (the same signature can
    appear in several contracts: look a log up under its emitter)."""
    return {
        bytes(keccak(text=_signature(entry))): entry["name"]
        for entry in artifact(name).abi
        if entry["type"] == "event"
    }


@dataclass(frozen=True)
class ErrorAbi:
    """A custom error: its name and argument types."""

    name: str
    types: tuple[str, ...]


@cache
def error_table() -> dict[bytes, ErrorAbi]:
    """Selector -> custom error, across every shipped contract (plus Error and Panic)."""
    table = {
        bytes.fromhex("08c379a0"): ErrorAbi("Error", ("string",)),
        bytes.fromhex("4e487b71"): ErrorAbi("Panic", ("uint256",)),
    }
    for name in CONTRACTS:
        for entry in artifact(name).abi:
            if entry["type"] != "error":
                continue
            types = tuple(_canonical(p) for p in entry["inputs"])
            table[bytes(keccak(text=_signature(entry)))[:4]] = ErrorAbi(entry["name"], types)
    return table

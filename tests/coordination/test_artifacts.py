"""The committed artifacts: pinned compiler, every contract present, errors decodable."""

from __future__ import annotations

from coordination import CONTRACTS, artifact
from coordination._artifacts import error_table


def test_artifacts_are_pinned_and_complete() -> None:
    for name in CONTRACTS:
        art = artifact(name)
        assert art.solc.startswith("0.8.37+"), art.solc
        assert art.bytecode.startswith("0x") and len(art.bytecode) > 100
        assert (
            any(entry["type"] == "constructor" for entry in art.abi) or name == "IdentityRegistry"
        )


def test_runtime_fits_the_contract_size_limit() -> None:
    for name in CONTRACTS:
        assert len(artifact(name).bytecode) // 2 < 2 * 24_576, name


def test_error_selectors_do_not_clash() -> None:
    table = error_table()
    names = {entry.name for entry in table.values()}
    for expected in ("InsufficientStake", "WrongStatus", "ERC20InsufficientBalance", "Panic"):
        assert expected in names

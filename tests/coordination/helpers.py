"""Small helpers shared by the coordination tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from coordination import ContractRevert

AI = 10**18


@contextmanager
def reverts(error: str, cls: type[ContractRevert] = ContractRevert) -> Iterator[None]:
    """Expect a decoded revert with custom error ``error`` (and exception class ``cls``)."""
    with pytest.raises(cls) as info:
        yield
    assert info.value.error == error, f"expected {error}, got {info.value}"


def h(n: int) -> bytes:
    """A distinct 32-byte hash for ``n``."""
    return n.to_bytes(32, "big")

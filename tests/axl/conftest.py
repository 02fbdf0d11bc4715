"""Fixtures for the axl tests: identities and transport clusters (parametrised by transport)."""

from __future__ import annotations

import pytest

from axl import Identity

from .clusters import CLUSTER_FACTORIES, ClusterFactory


@pytest.fixture(params=sorted(CLUSTER_FACTORIES))
def cluster_factory(request: pytest.FixtureRequest) -> ClusterFactory:
    """Every transport in turn: the conformance suite runs against each."""
    return CLUSTER_FACTORIES[request.param]


@pytest.fixture
def identities() -> list[Identity]:
    return [Identity.from_seed(bytes([i + 1]) * 32) for i in range(4)]

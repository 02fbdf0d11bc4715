"""Compute tests run torch on one thread in-process: the tests are tiny, and on a shared
two-core machine OpenMP worker threads only add contention. Cross-thread bit-identity is
tested in child processes (test_reproducibility.py) and by test_verde's honest pairs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

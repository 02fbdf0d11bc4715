"""Upload budgets: never more than rate x time + burst; refusal beyond the longest wait."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axl._blob_budget import UploadBudget


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("pq"), st.integers(1, 5000), st.floats(0, 0.5)), max_size=40)
)
def test_budget_never_lets_more_than_rate_times_time_plus_burst(
    calls: list[tuple[str, int, float]],
) -> None:
    budget = UploadBudget(
        per_peer_rate=1000, per_peer_burst=2000, global_rate=1500, global_burst=3000, max_wait=1.0
    )
    now = 0.0
    granted: dict[str, list[tuple[float, int]]] = {"p": [], "q": []}
    for peer, amount, gap in calls:
        now += gap
        wait = budget.reserve(peer, amount, now)
        if wait is not None:
            assert 0 <= wait <= 1.0
            granted[peer].append((now + wait, amount))
    for sends in granted.values():
        sent = sum(a for _, a in sends)
        last = max((t for t, _ in sends), default=0.0)
        assert sent <= 2000 + 1000 * last + 1e-6
    total = sum(a for s in granted.values() for _, a in s)
    last = max((t for s in granted.values() for t, _ in s), default=0.0)
    assert total <= 3000 + 1500 * last + 1e-6


def test_budget_refuses_beyond_max_wait() -> None:
    budget = UploadBudget(per_peer_rate=100, per_peer_burst=100, max_wait=1.0)
    assert budget.reserve("p", 100, 0.0) == 0.0
    assert budget.reserve("p", 100, 0.0) == pytest.approx(1.0)
    assert budget.reserve("p", 100, 0.0) is None  # would wait 2 s
    assert budget.reserve("q", 100, 0.0) == 0.0  # another peer has its own bucket

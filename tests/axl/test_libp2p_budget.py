"""The libp2p transport's global budgets (sans-IO): never over, always released."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axl import Refusal
from axl._libp2p_budget import Budgets

operations = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"])),
        st.tuples(st.just("close"), st.integers(0, 50)),
        st.tuples(st.just("reserve"), st.integers(0, 5000)),
        st.tuples(st.just("release"), st.integers(0, 50)),
    ),
    max_size=200,
)


@settings(max_examples=200)
@given(operations, st.integers(1, 6), st.integers(1, 4), st.integers(1, 10_000))
def test_budgets_are_never_exceeded_and_refusals_say_why(
    ops: list[tuple[str, object]], total: int, per_ip: int, buffer: int
) -> None:
    budgets = Budgets(
        max_connections=total, max_connections_per_ip=per_ip, max_buffered_bytes=buffer
    )
    open_ips: list[str] = []
    reserved: list[int] = []
    for op, arg in ops:
        if op == "open":
            assert isinstance(arg, str)
            before = budgets.connections_from(arg)
            refusal = budgets.open_connection(arg)
            if refusal is None:
                open_ips.append(arg)
            elif refusal is Refusal.CONNECTIONS:
                assert len(open_ips) == total
            else:
                assert refusal is Refusal.CONNECTIONS_PER_IP and before == per_ip
        elif op == "close" and open_ips:
            assert isinstance(arg, int)
            budgets.close_connection(open_ips.pop(arg % len(open_ips)))
        elif op == "reserve":
            assert isinstance(arg, int)
            if budgets.reserve(arg):
                reserved.append(arg)
            else:
                assert sum(reserved) + arg > buffer
        elif op == "release" and reserved:
            assert isinstance(arg, int)
            budgets.release(reserved.pop(arg % len(reserved)))
        assert budgets.connections == len(open_ips) <= total
        assert all(budgets.connections_from(ip) <= per_ip for ip in set(open_ips))
        assert budgets.buffered == sum(reserved) <= buffer
    for ip in open_ips:
        budgets.close_connection(ip)
    assert budgets.connections == 0


def test_releasing_what_was_not_taken_is_a_bug_not_a_silent_underflow() -> None:
    budgets = Budgets(max_connections=1, max_connections_per_ip=1, max_buffered_bytes=10)
    with pytest.raises(ValueError):
        budgets.close_connection("10.0.0.1")
    with pytest.raises(ValueError):
        budgets.release(1)

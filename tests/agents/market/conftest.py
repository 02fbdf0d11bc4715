"""A small market on the embedded chain, with fast polling, for the role tests."""

from __future__ import annotations

from typing import TypedDict

from hypothesis import strategies as st

from agents.market import Bid, ComputeOffer
from compute import SGD, MLPModel, TaskSpec

# The messages with an address field get their own strategies (hypothesis cannot build a
# pattern-constrained str from the type alone): the global round trip of every registered
# message type (tests/axl/test_messages.py) uses them once agents.market is imported.
_addresses = st.from_regex(r"0x[0-9a-f]{40}", fullmatch=True)
_amounts = st.integers(0, 2**256 - 1)
st.register_type_strategy(
    ComputeOffer,
    st.builds(
        ComputeOffer,
        address=_addresses,
        capacity=st.integers(1, 4096),
        price_per_step=_amounts,
        kinds=st.lists(st.text(max_size=32), max_size=16),
        stake=_amounts,
    ),
)
st.register_type_strategy(
    Bid,
    st.builds(
        Bid, job_id=st.integers(1, 2**256 - 1), address=_addresses, price=_amounts, stake=_amounts
    ),
)


class Fast(TypedDict):
    """Keyword arguments every role config takes: fast chain polling for the tests."""

    poll_interval: float


FAST: Fast = {"poll_interval": 0.25}


def tiny_spec(seed: int) -> TaskSpec:
    """A job that trains in milliseconds: 4 steps of a small MLP, a checkpoint per step."""
    return TaskSpec(
        model=MLPModel(), optimizer=SGD(), steps=4, batch_size=4, seed=seed, checkpoint_interval=1
    )

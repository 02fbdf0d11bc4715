"""A small market on the embedded chain, with fast polling, for the role tests."""

from __future__ import annotations

from compute import SGD, MLPModel, TaskSpec

FAST = {"poll_interval": 0.25}


def tiny_spec(seed: int) -> TaskSpec:
    """A job that trains in milliseconds: 4 steps of a small MLP, a checkpoint per step."""
    return TaskSpec(
        model=MLPModel(), optimizer=SGD(), steps=4, batch_size=4, seed=seed, checkpoint_interval=1
    )

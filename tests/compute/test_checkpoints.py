"""Checkpoint states under a memory budget: only those that fit are kept, the others are
recomputed bit for bit; the largest accepted MLP with 10**6 steps keeps a bounded number."""

from __future__ import annotations

import pytest

from compute import SGD, Adam, Cheat, Party, TaskSpec, init_state, play, state_hash, train
from compute._budget import cost
from compute._train import CHECKPOINT_MEMORY, Checkpoints, checkpoint_stride, state_bytes


@pytest.mark.parametrize("opt", [SGD(lr=0.1, momentum=0.9), Adam()])
def test_recomputed_checkpoints_are_bit_identical(opt: SGD | Adam) -> None:
    spec = TaskSpec(steps=12, checkpoint_interval=2, optimizer=opt)
    full = train(spec)
    size = state_bytes(full.checkpoints[0])
    small = train(spec, memory=2 * size)  # room for two states
    assert isinstance(small.checkpoints, Checkpoints)
    assert len(small.checkpoints.kept) <= 3 and small.checkpoints.stride > 1
    assert small.root == full.root
    assert [state_hash(s) for s in small.checkpoints] == full.hashes
    assert state_hash(small.final_state) == full.hashes[-1]
    with pytest.raises(IndexError):
        small.checkpoints[len(full.hashes)]


def test_a_game_over_recomputed_checkpoints_still_finds_the_cheat() -> None:
    spec = TaskSpec(steps=8, checkpoint_interval=2)
    size = state_bytes(init_state(spec))
    honest = Party("a", spec, result=train(spec, memory=size))
    liar = Party("b", spec, cheat=Cheat("perturb_weights", step=5))
    v = play(spec, honest, liar).verdict
    assert v.winner == "a" and v.step == 5


def test_the_largest_accepted_mlp_with_a_million_steps_keeps_few_checkpoints() -> None:
    # Find the widest single-hidden-layer MLP the budget accepts for 10**6 steps, c = 1.
    lo, hi = 1, 1024
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            TaskSpec.parse(
                {
                    "model": {"kind": "mlp", "in_dim": mid, "hidden": [mid], "classes": 256},
                    "steps": 10**6,
                    "optimizer": {"kind": "adam"},
                }
            )
            lo = mid
        except Exception:
            hi = mid - 1
    spec = TaskSpec.parse(
        {
            "model": {"kind": "mlp", "in_dim": lo, "hidden": [lo], "classes": 256},
            "steps": 10**6,
            "optimizer": {"kind": "adam"},
        }
    )
    size = cost(spec).state * 4
    stride = checkpoint_stride(spec.n_checkpoints, size, CHECKPOINT_MEMORY)
    kept = (spec.n_checkpoints + stride - 1) // stride + 1
    assert kept * size <= CHECKPOINT_MEMORY
    assert spec.n_checkpoints * size > 1000 * CHECKPOINT_MEMORY  # all of them would not fit

"""CPU and CUDA give the same trace for every task kind (MLP, CNN, transformer; SGD and Adam).

"Consistent across diverse hardware" is the execution layer's promise and CPU vs GPU is the
case users meet first. The state is moved to the GPU, every step runs there (float64 GEMMs on
integers below 2**53 are exact in cuBLAS too; every other primitive is correctly rounded or
exact), and every checkpoint hash, every op output of one step and the root must equal the
CPU run's. Skipped where torch sees no CUDA device."""

from __future__ import annotations

import pytest
import torch

from compute import (
    MerkleTree,
    TaskSpec,
    build_program,
    init_state,
    run_step,
    state_hash,
    tensor_hash,
    train,
)

from .tasks import REPRO_SPECS

NO_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device visible to torch (torch.cuda.is_available() is False): "
    "the CPU<->GPU root comparison needs a GPU machine",
)
IDS = [f"{s.model.kind}-{s.optimizer.kind}" for s in REPRO_SPECS]


@NO_CUDA
@pytest.mark.parametrize("spec", REPRO_SPECS, ids=IDS)
def test_cuda_roots_equal_cpu_roots(spec: TaskSpec) -> None:
    _compare(spec, "cuda")


def test_the_comparison_runs_on_a_moved_cpu_state() -> None:
    """The same harness on a CPU copy of the state (so it is exercised without a GPU)."""
    _compare(REPRO_SPECS[1], "cpu")


def _compare(spec: TaskSpec, device: str) -> None:
    cpu = train(spec)
    prog = build_program(spec)
    state = {k: v.to(device) for k, v in init_state(spec).items()}
    hashes = [state_hash(state)]
    for t in range(1, spec.steps + 1):
        keep = t == 1
        run = run_step(prog, state, keep=keep)
        if keep:
            cpu_run = run_step(prog, init_state(spec), keep=True)
            assert run.values is not None and cpu_run.values is not None
            for i, (g, c) in enumerate(zip(run.values, cpu_run.values, strict=True)):
                assert g.device.type == device
                assert tensor_hash(g) == tensor_hash(c), f"op {i} ({prog.nodes[i].prim})"
        state = run.state
        if t % spec.checkpoint_interval == 0:
            hashes.append(state_hash(state))
    assert hashes == cpu.hashes
    assert MerkleTree(hashes).root == cpu.root

"""NaN and infinity: hashes canonicalise NaN bits, no primitive turns a NaN's sign or payload
into a different number, and a run that diverges to inf/NaN is a defined, agreed outcome."""

from __future__ import annotations

import math

import torch

from compute import SGD, MLPModel, TaskSpec, build_program, init_state, run_step, tensor_hash, train
from compute._prims import PRIMS

from .primfuzz import SPECIALS
from .tasks import REPRO_SPECS

# NaNs with other signs and payloads (quiet and signalling) than the canonical 0x7fc00000.
NAN_BITS = [0x7FC00000, 0xFFC00000, 0x7FC00001, 0x7F800001, 0xFFFFFFFF, 0x7FBFFFFF]


def test_tensor_hash_ignores_nan_sign_and_payload() -> None:
    base = torch.tensor([1.0, 0.0, 0.0])
    hashes = set()
    for bits in NAN_BITS:
        t = base.clone()
        t[1] = torch.tensor(bits, dtype=torch.int64).to(torch.int32).view(torch.float32)
        assert math.isnan(float(t[1]))
        hashes.add(tensor_hash(t))
    assert len(hashes) == 1
    assert tensor_hash(torch.tensor([1.0, 0.0, 0.0])) not in hashes  # NaN still counts
    assert tensor_hash(torch.tensor([-0.0])) != tensor_hash(torch.tensor([0.0]))


def _with_nans(t: torch.Tensor, bits: int) -> torch.Tensor:
    if t.dtype != torch.float32 or t.numel() == 0:
        return t
    flat = t.reshape(-1).clone()
    nan = torch.tensor(bits, dtype=torch.int64).to(torch.int32).view(torch.float32)
    flat[:: max(1, flat.numel() // 3)] = nan
    return flat.view(t.shape)


def test_no_primitive_depends_on_nan_payload_bits() -> None:
    for spec in REPRO_SPECS:
        prog = build_program(spec)
        run = run_step(prog, init_state(spec), keep=True)
        assert run.values is not None
        for node in prog.nodes:
            if node.prim == "load":
                continue
            inputs = [run.values[j] for j in node.inputs]
            outs = {
                tensor_hash(PRIMS[node.prim](*[_with_nans(t, b) for t in inputs], **node.kwargs))
                for b in NAN_BITS
            }
            assert len(outs) == 1, f"{node.prim} depends on NaN bits"


def test_a_diverging_run_is_a_defined_agreed_outcome() -> None:
    spec = TaskSpec(
        model=MLPModel(in_dim=8, hidden=(64, 64), classes=3),
        optimizer=SGD(lr=10.0, momentum=0.99),
        data={"noise": 10.0},
        steps=16,
        batch_size=8,
    )
    before = torch.get_num_threads()
    a = train(spec)
    torch.set_num_threads(2)
    try:
        b = train(spec)
    finally:
        torch.set_num_threads(before)
    assert not all(math.isfinite(x) for x in a.losses), "the run was meant to diverge"
    assert a.root == b.root  # honest parties still agree: the outcome is the hashed state
    assert SPECIALS  # the env-matrix fuzz injects the same specials in child processes

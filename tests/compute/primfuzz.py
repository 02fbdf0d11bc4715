"""Hashes of every primitive of the test tasks on realistic and hostile inputs (shared by the
child-process tests: each child prints them, and they must equal the parent's).

For every node of every step program the inputs are the values of a real step, then the same
values with float entries scaled to extreme magnitudes, and with special values (±0, ±inf,
NaN, subnormals, the largest floats) written into a fixed pattern of positions."""

from __future__ import annotations

import torch
from torch import Tensor

from compute import TaskSpec, build_program, init_state, run_step, tensor_hash

SPECIALS = [-0.0, 0.0, float("inf"), float("-inf"), float("nan"), 1e-45, -3e-42, 1e-38]
SPECIALS += [3.4e38, -3.4e38, 1.0, -1.0, 0.5, 16777217.0]


def _variants(t: Tensor, salt: int) -> list[Tensor]:
    if t.dtype != torch.float32 or t.numel() == 0:
        return [t]
    flat = t.reshape(-1)
    n = flat.numel()
    idx = torch.arange(n)
    scaled = flat * torch.where(idx % 3 == 0, 2.0**60, torch.where(idx % 3 == 1, 2.0**-60, 1.0))
    special = flat.clone()
    pos = (idx * 7 + salt) % 5 == 0
    fill = torch.tensor(SPECIALS)[(idx + salt) % len(SPECIALS)]
    special[pos] = fill[pos]
    zeros = torch.where(idx % 2 == 0, -0.0, 0.0)  # ±0 only: the zero-sign cases
    return [t, scaled.view(t.shape), special.view(t.shape), zeros.view(t.shape)]


def primitive_hashes(specs: list[TaskSpec], labels: list[str] | None = None) -> list[str]:
    """One hash per (spec, node, input variant), plus the op trace of a real step; ``labels``
    (if given) receives a description of each entry."""
    from compute._prims import PRIMS

    out: list[str] = []
    for spec in specs:
        prog = build_program(spec)
        state = init_state(spec)
        run = run_step(prog, run_step(prog, state).state, keep=True)  # step 2: non-zero moments
        assert run.values is not None
        out.extend(tensor_hash(v).hex() for v in run.values)
        if labels is not None:
            labels.extend(f"{spec.model.kind} trace {i} {n.prim}" for i, n in enumerate(prog.nodes))
        for i, node in enumerate(prog.nodes):
            if node.prim == "load":
                continue
            inputs = [run.values[j] for j in node.inputs]
            per_input = [_variants(t, i + k) for k, t in enumerate(inputs)]
            for v in range(max(len(p) for p in per_input)):
                args = [p[min(v, len(p) - 1)] for p in per_input]
                if labels is not None:
                    labels.append(f"{spec.model.kind} node {i} {node.prim} variant {v}")
                try:
                    value = PRIMS[node.prim](*args, **node.kwargs)
                    out.append(tensor_hash(value).hex())
                except Exception as exc:  # the same error everywhere is also bit-identity
                    out.append(f"error:{type(exc).__name__}")
    return out

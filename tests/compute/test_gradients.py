"""The hand-written backward passes match torch autograd (float64 reference)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from compute import (
    SGD,
    CNNModel,
    DataSpec,
    MLPModel,
    TaskSpec,
    TransformerModel,
    build_program,
    init_state,
    run_step,
)


def _ref_mlp(p: dict[str, Tensor], x: Tensor, y: Tensor, m: MLPModel) -> Tensor:
    h = x
    n = len(m.hidden) + 1
    for i in range(n):
        h = h @ p[f"l{i}.w"].T + p[f"l{i}.b"]
        if i < n - 1:
            h = torch.relu(h)
    return F.cross_entropy(h, y)


def _ref_cnn(p: dict[str, Tensor], x: Tensor, y: Tensor, m: CNNModel) -> Tensor:
    c0, (c1, c2) = m.in_channels, m.channels
    h = F.conv2d(x, p["conv1.w"].view(c1, c0, 3, 3), p["conv1.b"], padding=1)
    h = F.avg_pool2d(torch.relu(h), 2)
    h = F.conv2d(h, p["conv2.w"].view(c2, c1, 3, 3), p["conv2.b"], padding=1)
    h = F.avg_pool2d(torch.relu(h), 2).reshape(x.shape[0], -1)
    return F.cross_entropy(h @ p["head.w"].T + p["head.b"], y)


def _ref_transformer(p: dict[str, Tensor], x: Tensor, y: Tensor, m: TransformerModel) -> Tensor:
    b, t = x.shape
    d, nh = m.d_model, m.heads

    def ln(h: Tensor, n: str) -> Tensor:
        return F.layer_norm(h, (d,), p[n + ".g"], p[n + ".b"], 1e-5)

    h = p["emb"][x] + p["pos"]
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    for i in range(m.layers):
        qkv = ln(h, f"b{i}.ln1") @ p[f"b{i}.qkv.w"].T + p[f"b{i}.qkv.b"]
        q, k, v = (z.reshape(b, t, nh, d // nh).transpose(1, 2) for z in torch.split(qkv, d, -1))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d // nh)
        o = torch.softmax(s.masked_fill(mask, float("-inf")), -1) @ v
        o = o.transpose(1, 2).reshape(b, t, d)
        h = h + o @ p[f"b{i}.proj.w"].T + p[f"b{i}.proj.b"]
        f = torch.relu(ln(h, f"b{i}.ln2") @ p[f"b{i}.fc1.w"].T + p[f"b{i}.fc1.b"])
        h = h + f @ p[f"b{i}.fc2.w"].T + p[f"b{i}.fc2.b"]
    logits = ln(h, "lnf") @ p["head.w"].T + p["head.b"]
    return F.cross_entropy(logits.reshape(b * t, -1), y)


SPECS = [
    TaskSpec(model=MLPModel(in_dim=6, hidden=(10, 7), classes=3), batch_size=5),
    TaskSpec(model=CNNModel(image_size=8, in_channels=2, channels=(3, 4), classes=3)),
    TaskSpec(
        model=TransformerModel(vocab=7, seq_len=5, d_model=8, heads=2, d_ff=12, layers=2),
        data=DataSpec(kind="shift"),
        batch_size=3,
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model.kind)
def test_gradients_match_autograd(spec: TaskSpec) -> None:
    prog = build_program(spec.model_copy(update={"optimizer": SGD(lr=0.5)}))
    state = init_state(spec)
    # Move the parameters off their initial values so biases and gammas are not trivial.
    state = run_step(prog, state).state
    run = run_step(prog, state, keep=True)
    assert run.values is not None
    x, y = run.values[2], run.values[3]
    params = {
        k[2:]: v.double().requires_grad_(True) for k, v in state.items() if k.startswith("p.")
    }
    xin = x if x.dtype == torch.int64 else x.double()
    m = spec.model
    if isinstance(m, MLPModel):
        loss = _ref_mlp(params, xin, y, m)
    elif isinstance(m, CNNModel):
        loss = _ref_cnn(params, xin, y, m)
    else:
        loss = _ref_transformer(params, xin, y, m)
    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
    assert float(run.values[prog.loss]) == pytest.approx(loss.item(), rel=1e-5)
    assert set(prog.grads) == set(params)
    for name, node in prog.grads.items():
        ours = run.values[node].double()
        theirs = params[name].grad
        assert theirs is not None
        scale = theirs.abs().max().item() + 1e-6
        assert (ours - theirs).abs().max().item() <= 1e-4 * scale, name

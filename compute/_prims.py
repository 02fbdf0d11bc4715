"""The primitive operations a step program is made of.

Each primitive is a pure function of its input tensors and keyword attributes built only from
the reproducible operators in :mod:`compute._repops` and exact tensor moves (views, gathers,
padding, concatenation). The Verde referee recomputes exactly one of these to settle a dispute.
The data primitives and the RNG they draw from are :mod:`._prims_data`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _native
from ._prims_data import data_x, data_y
from ._repops import (
    mm_bits,
    rexp,
    rlog_softmax,
    rmax,
    rmean_all,
    rmm,
    rsoftmax,
    rsum,
    rsum_rows,
    sqrt_rn,
)

Prim = Callable[..., Tensor]
PRIMS: dict[str, Prim] = {"data_x": data_x, "data_y": data_y}

_LN_EPS = 1e-5


def _prim(name: str) -> Callable[[Prim], Prim]:
    def register(fn: Prim) -> Prim:
        PRIMS[name] = fn
        return fn

    return register


# --- dense layers -----------------------------------------------------------------------------


@_prim("linear")
def linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``x @ w.T + b`` for x (N, in), w (out, in), b (out,)."""
    fused = _native.rmm(x, w.t(), mm_bits(x.shape[-1]), b)
    if fused is not None:
        return fused
    return rmm(x, w.t()) + b


@_prim("matmul")
def matmul(a: Tensor, b: Tensor, *, ta: bool = False, tb: bool = False) -> Tensor:
    """``op(a) @ op(b)`` where op transposes the last two dims when asked."""
    return rmm(a.transpose(-1, -2) if ta else a, b.transpose(-1, -2) if tb else b)


@_prim("add")
def add(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise sum (same shapes)."""
    return a + b


@_prim("relu")
def relu(x: Tensor) -> Tensor:
    """max(x, 0) as ``where(x <= 0, +0, x)``: ``torch.relu`` of ``-0`` is ``-0`` or ``+0``
    depending on the kernel; here it is ``+0`` everywhere (NaN stays NaN)."""
    fused = _native.relu(x)
    if fused is not None:
        return fused
    return torch.where(x <= 0, 0.0, x)


@_prim("relu_grad")
def relu_grad(g: Tensor, x: Tensor) -> Tensor:
    """The gradient through relu: g where x > 0, else 0."""
    fused = _native.relu_grad(g, x)
    if fused is not None:
        return fused
    return torch.where(x > 0, g, 0.0)


@_prim("sum_rows")
def sum_rows(g: Tensor) -> Tensor:
    """Tree sum over every dim but the last (bias gradients)."""
    return rsum_rows(g)


@_prim("reshape")
def reshape(x: Tensor, *, shape: tuple[int, ...]) -> Tensor:
    """A contiguous reshape."""
    return x.reshape(shape).contiguous()


# --- loss ---------------------------------------------------------------------------------


@_prim("ce_loss")
def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of logits (N, C) against class ids (N,), as a 0-dim tensor."""
    fused = _native.ce_loss(logits, y)
    if fused is not None:
        return fused
    picked = rlog_softmax(logits).gather(1, y[:, None])
    return -rmean_all(picked)


@_prim("ce_grad")
def ce_grad(logits: Tensor, y: Tensor) -> Tensor:
    """d(mean cross-entropy)/d(logits) = (softmax - onehot) / N."""
    fused = _native.ce_grad(logits, y)
    if fused is not None:
        return fused
    onehot = torch.zeros_like(logits).scatter(1, y[:, None], 1.0)
    return (rsoftmax(logits) - onehot) / float(logits.shape[0])


# --- layer norm -----------------------------------------------------------------------------


def _ln_hat(x: Tensor) -> tuple[Tensor, Tensor]:
    d = float(x.shape[-1])
    xc = x - rsum(x, -1, keepdim=True) / d
    std = sqrt_rn(rsum(xc * xc, -1, keepdim=True) / d + _LN_EPS)
    return xc / std, std


@_prim("layernorm")
def layernorm(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """Layer norm over the last dim with affine gamma, beta."""
    fused = _native.layernorm(x, gamma, beta, _LN_EPS)
    if fused is not None:
        return fused
    return _ln_hat(x)[0] * gamma + beta


@_prim("layernorm_grad_x")
def layernorm_grad_x(x: Tensor, gamma: Tensor, g: Tensor) -> Tensor:
    """Gradient of layer norm with respect to its input."""
    fused = _native.layernorm_grad_x(x, gamma, g, _LN_EPS)
    if fused is not None:
        return fused
    xhat, std = _ln_hat(x)
    d = float(x.shape[-1])
    gh = g * gamma
    mean_gh = rsum(gh, -1, keepdim=True) / d
    mean_ghx = rsum(gh * xhat, -1, keepdim=True) / d
    return (gh - mean_gh - xhat * mean_ghx) / std


@_prim("layernorm_grad_gamma")
def layernorm_grad_gamma(x: Tensor, g: Tensor) -> Tensor:
    """Gradient of layer norm with respect to gamma."""
    fused = _native.layernorm_grad_gamma(x, g, _LN_EPS)
    if fused is not None:
        return fused
    return rsum_rows(g * _ln_hat(x)[0])


# --- attention ----------------------------------------------------------------------------


@_prim("split_heads")
def split_heads(qkv: Tensor, *, which: int, batch: int, heads: int) -> Tensor:
    """Part ``which`` (0=q, 1=k, 2=v) of (B*T, 3d) as (B*heads, T, d/heads)."""
    d = qkv.shape[-1] // 3
    t = qkv.shape[0] // batch
    part = qkv[:, which * d : (which + 1) * d].reshape(batch, t, heads, d // heads)
    return part.permute(0, 2, 1, 3).reshape(batch * heads, t, d // heads).contiguous()


@_prim("merge_heads")
def merge_heads(o: Tensor, *, batch: int, heads: int) -> Tensor:
    """(B*heads, T, dh) back to (B*T, heads*dh)."""
    _, t, dh = o.shape
    return o.reshape(batch, heads, t, dh).permute(0, 2, 1, 3).reshape(batch * t, heads * dh)


@_prim("join_qkv")
def join_qkv(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Concatenate three (N, d) tensors into (N, 3d)."""
    return torch.cat([q, k, v], 1)


def _causal_mask(t: int, device: torch.device) -> Tensor:
    return torch.ones(t, t, dtype=torch.bool, device=device).triu(1)


@_prim("causal_softmax")
def causal_softmax(s: Tensor, *, scale: float) -> Tensor:
    """Softmax of ``s * scale`` over the last dim with future positions masked to exactly 0."""
    fused = _native.causal_softmax(s, scale)
    if fused is not None:
        return fused
    mask = _causal_mask(s.shape[-1], s.device)
    z = (s * scale).masked_fill(mask, float("-inf"))
    e = rexp(z - rmax(z, -1)).masked_fill(mask, 0.0)
    return e / rsum(e, -1, keepdim=True)


@_prim("softmax_grad")
def softmax_grad(p: Tensor, g: Tensor, *, scale: float) -> Tensor:
    """Gradient through ``softmax(s * scale)``: scale * p * (g - sum(p * g))."""
    fused = _native.softmax_grad(p, g, scale)
    if fused is not None:
        return fused
    return (p * (g - rsum(p * g, -1, keepdim=True))) * scale


@_prim("onehot")
def onehot(tokens: Tensor, *, classes: int) -> Tensor:
    """(B, T) token ids as (B*T, classes) float32 one-hot rows."""
    flat = tokens.reshape(-1, 1)
    return torch.zeros(flat.shape[0], classes, device=tokens.device).scatter(1, flat, 1.0)


@_prim("add_pos")
def add_pos(x: Tensor, pos: Tensor, *, batch: int) -> Tensor:
    """Add (T, d) position embeddings to (B*T, d) rows."""
    t, d = pos.shape
    return (x.view(batch, t, d) + pos).view(batch * t, d)


@_prim("sum_batch")
def sum_batch(g: Tensor, *, batch: int) -> Tensor:
    """Tree sum of (B*T, d) over the batch: the position embedding gradient (T, d)."""
    return rsum(g.view(batch, -1, g.shape[-1]), 0)


# --- convolution ------------------------------------------------------------------------------


@_prim("im2col")
def im2col(x: Tensor) -> Tensor:
    """3x3 patches (padding 1) of (B, C, H, W) as rows (B*H*W, C*9), order (c, ky, kx)."""
    fused = _native.im2col(x)
    if fused is not None:
        return fused
    b, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    cols = torch.stack([xp[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)], 2)
    return cols.permute(0, 3, 4, 1, 2).reshape(b * h * w, c * 9)


@_prim("col2im")
def col2im(cols: Tensor, *, batch: int, channels: int, size: int) -> Tensor:
    """Adjoint of :func:`im2col`: overlapping patches are added in a fixed (ky, kx) order."""
    fused = _native.col2im(cols, batch, channels, size)
    if fused is not None:
        return fused
    h = w = size
    c = cols.reshape(batch, h, w, channels, 3, 3).permute(0, 3, 4, 5, 1, 2)
    out = torch.zeros(batch, channels, h + 2, w + 2, dtype=cols.dtype, device=cols.device)
    for i in range(3):
        for j in range(3):
            out[:, :, i : i + h, j : j + w] += c[:, :, i, j]
    return out[:, :, 1 : h + 1, 1 : w + 1].contiguous()


@_prim("rows_to_nchw")
def rows_to_nchw(y: Tensor, *, batch: int, size: int) -> Tensor:
    """(B*H*W, C) rows to a (B, C, H, W) image."""
    return y.reshape(batch, size, size, -1).permute(0, 3, 1, 2).contiguous()


@_prim("nchw_to_rows")
def nchw_to_rows(x: Tensor) -> Tensor:
    """(B, C, H, W) to (B*H*W, C) rows."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).contiguous()


@_prim("avgpool2")
def avgpool2(x: Tensor) -> Tensor:
    """2x2 average pooling, stride 2, summing the four taps in a fixed order."""
    s = x[..., 0::2, 0::2] + x[..., 0::2, 1::2]
    s = s + x[..., 1::2, 0::2]
    return (s + x[..., 1::2, 1::2]) * 0.25


@_prim("avgpool2_grad")
def avgpool2_grad(g: Tensor) -> Tensor:
    """Gradient through :func:`avgpool2` (exact: a quarter to each tap)."""
    return (g * 0.25).repeat_interleave(2, -1).repeat_interleave(2, -2).contiguous()


# --- optimisers -----------------------------------------------------------------------------


@_prim("weight_decay")
def weight_decay(g: Tensor, p: Tensor, *, wd: float) -> Tensor:
    """g + wd * p."""
    return g + p * wd


@_prim("sgd_buf")
def sgd_buf(buf: Tensor, g: Tensor, *, momentum: float) -> Tensor:
    """Momentum buffer update: momentum * buf + g."""
    return buf * momentum + g


@_prim("sgd_param")
def sgd_param(p: Tensor, d: Tensor, *, lr: float) -> Tensor:
    """p - lr * d."""
    return p - d * lr


@_prim("adam_m")
def adam_m(m: Tensor, g: Tensor, *, beta: float) -> Tensor:
    """First moment: beta * m + (1 - beta) * g."""
    fused = _native.adam_moment("m", m, g, beta)
    if fused is not None:
        return fused
    return m * beta + g * (1.0 - beta)


@_prim("adam_v")
def adam_v(v: Tensor, g: Tensor, *, beta: float) -> Tensor:
    """Second moment: beta * v + (1 - beta) * g * g."""
    fused = _native.adam_moment("v", v, g, beta)
    if fused is not None:
        return fused
    return v * beta + (g * g) * (1.0 - beta)


@_prim("adam_pow")
def adam_pow(bp: Tensor, *, beta: float) -> Tensor:
    """Running power beta**t, one multiplication per step."""
    return bp * beta


@_prim("adam_param")
def adam_param(
    p: Tensor, m: Tensor, v: Tensor, b1p: Tensor, b2p: Tensor, *, lr: float, eps: float
) -> Tensor:
    """p - lr * m_hat / (sqrt(v_hat) + eps) with bias-corrected moments."""
    fused = _native.adam_param(p, m, v, b1p, b2p, lr, eps)
    if fused is not None:
        return fused
    # Same operations and order as p - (m / (1 - b1p) * lr) / (sqrt(v / (1 - b2p)) + eps)
    # (sqrt correctly rounded: sqrt_rn),
    # in place on fresh temporaries (in-place ops round exactly like out-of-place ones).
    step = torch.div(m, 1.0 - b1p).mul_(lr)
    denom = sqrt_rn(torch.div(v, 1.0 - b2p)).add_(eps)
    return p - step.div_(denom)


@_prim("incr")
def incr(step: Tensor) -> Tensor:
    """step + 1."""
    return step + 1


def apply_prim(name: str, inputs: list[Tensor], attrs: dict[str, Any]) -> Tensor:
    """Run primitive ``name``; raises KeyError for an unknown primitive."""
    return PRIMS[name](*inputs, **attrs)

"""The data primitives: a counter-based integer RNG (exact on every machine: 32-bit integer
hashing, fused by :mod:`compute._native` when it is loaded) and the synthetic batches a step
program loads from it (``data_x``, ``data_y``; registered in :data:`compute._prims.PRIMS`)."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from . import _native

_M32 = 0xFFFFFFFF


def _hash32(x: Tensor) -> Tensor:
    x = x ^ (x >> 16)  # a fresh tensor: the rest may work in place (integer ops are exact)
    x.mul_(0x7FEB352D).bitwise_and_(_M32)
    x.bitwise_xor_(x >> 15)
    x.mul_(0x846CA68B).bitwise_and_(_M32)
    return x.bitwise_xor_(x >> 16)


def _hash32_int(x: int) -> int:
    """:func:`_hash32` of one non-negative 32-bit Python int."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def random_bits(key: Tensor, stream: Tensor | int, count: int) -> Tensor:
    """``count`` 32-bit words (int64) from (key, stream): a pure function of its arguments."""
    # The per-call seed is a scalar: hash it with Python ints (the same 32-bit arithmetic; the
    # int64 tensor form only wraps above bit 63, which the 32-bit masks discard) instead of
    # ~20 tiny tensor ops.
    base = _hash32_int((_hash32_int((int(key) + int(stream)) & _M32) ^ 0x5BD1E995) & _M32)
    fused = _native.random_bits(base, count, key.device)
    if fused is not None:
        return fused
    idx = torch.arange(count, dtype=torch.int64, device=key.device)
    return _hash32(idx.mul_(0x9E3779B9).add_(base).bitwise_and_(_M32))


def random_uniform(key: Tensor, stream: Tensor | int, count: int) -> Tensor:
    """``count`` float32 values in [0, 1) with 24 random bits each."""
    return (random_bits(key, stream, count) >> 8).to(torch.float32) * (2.0**-24)


_CENTROIDS_STREAM = 0x7FFFFFF1


@functools.lru_cache(maxsize=16)
def _centroids(key: int, classes: int, dim: int) -> Tensor:
    """Class centroids in [-1, 1): a pure function of (key, classes, dim), so memoised."""
    u = random_uniform(torch.tensor(key, dtype=torch.int64), _CENTROIDS_STREAM, classes * dim)
    return u.view(classes, dim) * 2.0 - 1.0


def _labels(step: Tensor, key: Tensor, batch: int, classes: int) -> Tensor:
    return random_bits(key, step * 2, batch) % classes


def data_x(
    step: Tensor,
    key: Tensor,
    *,
    kind: str,
    batch: int,
    shape: tuple[int, ...],
    classes: int,
    noise: float,
) -> Tensor:
    """Inputs of the batch at ``step``: cluster samples (float32) or token ids (int64)."""
    if kind == "shift":
        return random_bits(key, step * 2, batch * shape[0]).remainder(classes).view(batch, *shape)
    dim = 1
    for s in shape:
        dim *= s
    centroids = _centroids(int(key), classes, dim).to(key.device)
    y = _labels(step, key, batch, classes)
    jitter = random_uniform(key, step * 2 + 1, batch * dim).view(batch, dim) * 2.0 - 1.0
    return (centroids[y] + jitter * noise).view(batch, *shape)


def data_y(
    step: Tensor,
    key: Tensor,
    *,
    kind: str,
    batch: int,
    shape: tuple[int, ...],
    classes: int,
    noise: float,
) -> Tensor:
    """Targets of the batch at ``step`` (int64): the cluster id, or the previous token."""
    if kind == "shift":
        tokens = data_x(
            step, key, kind=kind, batch=batch, shape=shape, classes=classes, noise=noise
        )
        return torch.cat([tokens[:, :1], tokens[:, :-1]], 1).reshape(-1)
    return _labels(step, key, batch, classes)

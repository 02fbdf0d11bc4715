"""Canonical hashes of tensors and training states (SHA-256).

``tensor_hash(t) = sha256("axl.tensor.v1" 0x00 dtype 0x00 ndim:u8 shape:u64le* data)`` where
``data`` is the tensor's contiguous little-endian bytes. ``state_hash`` hashes the sorted
``(name, tensor_hash)`` pairs: ``sha256("axl.state.v1" 0x00 (len:u16le name hash)*)``, so a
party can reveal one tensor of a state and prove it against the state hash with the list.

**NaN is canonical**: before hashing, every NaN of a float tensor is replaced by the one
quiet NaN ``0x7fc00000`` (float32) / ``0x7ff8000000000000`` (float64). Kernels (and CPU vs
GPU) disagree on the sign and payload bits of the NaNs they produce, and nothing in a step
program turns a NaN's payload into a number, so the hashes of two honest runs never differ
by NaN bits. ``tensor_bytes`` (the wire form) is not canonicalised: the receiver hashes.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
from collections.abc import Mapping

import torch
from torch import Tensor

_DTYPES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.bool: "bool",
}
_BY_NAME = {v: k for k, v in _DTYPES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """The canonical name of a supported dtype; raises KeyError for others."""
    return _DTYPES[dtype]


def dtype_from_name(name: str) -> torch.dtype:
    """Inverse of :func:`dtype_name`; raises KeyError for unknown names."""
    return _BY_NAME[name]


def tensor_bytes(t: Tensor) -> bytes:
    """The raw little-endian bytes of ``t`` (made contiguous, on CPU)."""
    t = t.detach().to("cpu").contiguous()
    n = t.numel() * t.element_size()
    if n == 0:
        return b""
    return bytes((ctypes.c_char * n).from_address(t.data_ptr()))


_CANONICAL_NAN = {
    torch.float32: torch.tensor(0x7FC00000, dtype=torch.int32).view(torch.float32),
    torch.float64: torch.tensor(0x7FF8000000000000, dtype=torch.int64).view(torch.float64),
}


def canonical(t: Tensor) -> Tensor:
    """``t`` on CPU, contiguous, with every NaN replaced by the canonical quiet NaN."""
    t = t.detach().to("cpu").contiguous()
    nan = _CANONICAL_NAN.get(t.dtype)
    if nan is not None:
        isnan = torch.isnan(t)
        if bool(isnan.any()):
            t = torch.where(isnan, nan, t)
    return t


def _update(h: hashlib._Hash, t: Tensor) -> None:
    t = canonical(t)
    h.update(b"axl.tensor.v1\x00" + _DTYPES[t.dtype].encode() + b"\x00")
    h.update(struct.pack("<B", t.dim()) + b"".join(struct.pack("<Q", s) for s in t.shape))
    n = t.numel() * t.element_size()
    if n:
        h.update(memoryview((ctypes.c_char * n).from_address(t.data_ptr())))


def tensor_hash(t: Tensor) -> bytes:
    """32-byte SHA-256 of the tensor's dtype, shape and contents."""
    h = hashlib.sha256()
    _update(h, t)
    return h.digest()


def state_hash_from(tensor_hashes: Mapping[str, bytes]) -> bytes:
    """The state hash from per-tensor hashes (names sorted)."""
    h = hashlib.sha256(b"axl.state.v1\x00")
    for name in sorted(tensor_hashes):
        raw = name.encode()
        h.update(struct.pack("<H", len(raw)) + raw + tensor_hashes[name])
    return h.digest()


def state_hash(state: Mapping[str, Tensor]) -> bytes:
    """32-byte hash of a training state (every tensor: params, optimiser, rng key, step)."""
    return state_hash_from({k: tensor_hash(v) for k, v in state.items()})

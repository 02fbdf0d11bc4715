"""Canonical hashes of tensors and training states (SHA-256).

``tensor_hash(t) = sha256("axl.tensor.v1" 0x00 dtype 0x00 ndim:u8 shape:u64le* data)`` where
``data`` is the tensor's contiguous little-endian bytes. ``state_hash`` hashes the sorted
``(name, tensor_hash)`` pairs: ``sha256("axl.state.v1" 0x00 (len:u16le name hash)*)``, so a
party can reveal one tensor of a state and prove it against the state hash with the list.
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


def _update(h: hashlib._Hash, t: Tensor) -> None:
    t = t.detach().to("cpu").contiguous()
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

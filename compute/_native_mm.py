"""The machinery of the exact products (:func:`compute._native.rmm`): per-thread scratch
buffers, quantisation of the operands to integers, and the exact int8 limb GEMM. Each function
takes the loaded library; whether a product runs here is :mod:`compute._native`'s choice."""

from __future__ import annotations

import ctypes
import threading

import torch
from torch import Tensor


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


_scratch = threading.local()
_SCRATCH_LIMIT = 2**25  # float64 elements (256 MiB) per buffer kept between calls


def _buffer(role: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> Tensor:
    """A scratch tensor (float64 unless ``dtype``) of ``shape`` for ``role``, reused by later
    calls in this thread (rmm's quantised operands, limbs and exact product are temporaries:
    reusing their memory saves the allocation and page faults of megabytes per product; values
    are unaffected)."""
    n = 1
    for d in shape:
        n *= d
    if n > _SCRATCH_LIMIT:
        return torch.empty(shape, dtype=dtype)
    bufs: dict[str, Tensor] = _scratch.__dict__.setdefault("bufs", {})
    buf = bufs.get(role)
    if buf is None or buf.numel() < n or buf.dtype != dtype:
        buf = bufs[role] = torch.empty(n, dtype=dtype)
    return buf[:n].view(shape)


def _quantise(
    lib: ctypes.CDLL, x: Tensor, axis: int, bits: int, role: str
) -> tuple[Tensor, Tensor]:
    """q (float64, the logical shape of ``x``, possibly a transposed view) and scales s (float64,
    (B, R) for axis 1 or (B, C) for axis 0) of a 3-D float32 ``x``, read in memory order."""
    xt = x.transpose(1, 2)
    if not x.is_contiguous() and xt.is_contiguous():
        q, s = _quantise(lib, xt, 1 - axis, bits, role)  # the same numbers, stored transposed
        return q.transpose(1, 2), s
    x = x.contiguous()
    nb, nr, nc = x.shape
    q = _buffer(role, (nb, nr, nc))
    s = torch.empty((nb, nr if axis == 1 else nc), dtype=torch.float64)
    lib.axl_quant(_ptr(x), nb, nr, nc, axis, bits, _ptr(q), _ptr(s))
    return q, s


# The exact int8 limb GEMM: each quantised operand (|q| <= 2**bits) is split into balanced
# 7-bit limbs, q = sum_l d_l * 128**l with d_l in [-64, 63]; for each shift s the limb pairs
# (i, s - i) run as one torch._int_mm (int32 sums) over the limbs stacked along K; the int32
# sums combine exactly in int64 into the same integer the float64 GEMM gives. 7 bits, not 8:
# int8 GEMMs without VNNI (oneDNN's AVX2 path: vpmaddubsw on a + 128) saturate int16 pair sums
# of full-range int8 (tests/compute/test_int_gemm.py shows it under ONEDNN_MAX_CPU_ISA=AVX2);
# with 7-bit limbs a pair sum is at most 2 * 191 * 64 < 2**15.
# Every int32 partial sum holds at most limbs(bits) * K products of magnitude <= 2**12.
INT32_LIMIT = 2**31


def limbs(bits: int) -> int:
    """The number of balanced 7-bit limbs that hold every integer of magnitude <= 2**bits."""
    n = 1
    while 63 * (128**n - 1) // 127 < 2**bits:
        n += 1
    return n


def _stack_limbs(lib: ctypes.CDLL, q: Tensor, nl: int, rev: bool, role: str) -> Tensor:
    """(r, nl * c) int8 limbs of the (r, c) integers q, stacked along the columns (reversed if
    ``rev``); a transposed view of a buffer where q is column-major."""
    r, c = q.shape
    if q.stride(1) != 1 and q.stride(0) == 1:  # column-major: stack along the rows of q.T
        out = _buffer(role, (nl * c, r), torch.int8)
        lib.axl_limbs(_ptr(q), c, r, q.stride(1), nl, 0, int(rev), _ptr(out))
        return out.t()
    q = q if q.stride(1) == 1 else q.contiguous()
    out = _buffer(role, (r, nl * c), torch.int8)
    lib.axl_limbs(_ptr(q), r, c, q.stride(0), nl, 1, int(rev), _ptr(out))
    return out


def _limb_mm(lib: ctypes.CDLL, qa: Tensor, qb: Tensor, bits: int, exact: Tensor) -> bool:
    """The exact product of the integer matrices qa (m, k) and qb (k, n) (float64 views, |q| <=
    2**bits) into ``exact`` (float64, (m, n), contiguous) through int8 limb GEMMs; False (and
    ``exact`` untouched) where torch._int_mm refuses or K is too long for int32 sums."""
    m, k = qa.shape
    n = qb.shape[1]
    nl = limbs(bits)
    if nl * k * 64 * 64 >= INT32_LIMIT:
        return False
    # Limbs stacked along K: qa's limbs 0..nl-1 in order, qb's in reverse, so that the pairs
    # (i, s - i) of a shift s are one contiguous slice of each. Each is written in the memory
    # order of its operand (row- or column-major) and sliced as a view of that layout.
    la = _stack_limbs(lib, qa, nl, False, "la")
    lb = _stack_limbs(lib, qb.t(), nl, True, "lb").t()
    shifts = 2 * nl - 1
    sums = _buffer("sums", (shifts, m, n), torch.int32)
    try:
        for s in range(shifts):
            lo, hi = max(0, s - nl + 1), min(s, nl - 1)
            row, width = (nl - 1 - s + lo) * k, (hi - lo + 1) * k
            torch._int_mm(la[:, lo * k : lo * k + width], lb[row : row + width], out=sums[s])
    except RuntimeError:
        return False
    lib.axl_limb_sum(_ptr(sums), shifts, m * n, _ptr(exact))
    return True

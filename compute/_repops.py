"""Reproducible operators (the RepOps idea).

Every function here gives bit-identical float32 results for any thread count and any
``ATEN_CPU_CAPABILITY``, because each output element is computed by a fixed sequence of
operations that IEEE 754 defines exactly:

* elementwise ``+ - * /``, ``round``, comparisons, ``abs``, ``where`` and integer ops are
  correctly rounded (or exact) per element, whatever the vector width or thread split; no
  fused multiply-add kernels (``addcmul``, ``addmm``, ``lerp``, ``alpha=``) are used;
* ``torch.sqrt`` is *not* among them: on CPU torch hands float32 and float64 sqrt to MKL's
  vector math, which is not correctly rounded on every code path (``MKL_CBWR``,
  ``MKL_ENABLE_INSTRUCTIONS``, the CPU vendor). :func:`sqrt_rn` uses it only for a candidate
  and corrects that with exact float64 comparisons;
* the sign of a zero is made canonical wherever kernels may pick either (``max`` of ``-0``
  and ``+0``, an all-zero GEMM sum): :func:`rmax` and :func:`rmm` return ``+0`` there;
* reductions are fixed binary trees of elementwise adds (:func:`rsum`), or exact (``amax``);
* matrix products (:func:`rmm`) quantise each row of A and each column of B to integers of
  ``b`` bits times a power of two (block floating point), multiply them with a float64 GEMM
  in which every product and partial sum is an integer below 2**53 and therefore exact in
  any order, and round the exact result to float32 once;
* ``exp`` and ``log`` are polynomial evaluations built from the elementwise ops above, not
  libm or SLEEF (whose last-bit results differ between scalar and vector code).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import _native

# Row maxima below this are clamped so 2**bits / 2**e stays a normal float32.
_CLAMP = 2.0**-100
LN2_HI = 0.693145751953125  # few mantissa bits: n * LN2_HI is exact for |n| < 2**8
LN2_LO = 1.428606765330187045e-06
LOG2E = 1.4426950408889634


def mm_bits(k: int) -> int:
    """Bits per quantised operand for a reduction of length ``k`` (so sums stay below 2**53)."""
    return min(24, (53 - max(0, math.ceil(math.log2(max(k, 1))))) // 2)


def _quantise(x: Tensor, dim: int, bits: int) -> tuple[Tensor, Tensor]:
    """Integers q (float64, |q| <= 2**bits) and power-of-two scales s with x ~= q * s.

    Every step is elementwise or an exact max, so q and s are the same on any machine.
    """
    m = x.abs().amax(dim=dim, keepdim=True).clamp_min_(_CLAMP)
    mant, _ = torch.frexp(m)
    p = m.div_(mant)  # exactly 2**e with max|x| < 2**e
    # |q| <= 2**bits <= 2**24: exact in float32. In-place ops on fresh temporaries round the
    # same way as their out-of-place forms; they only save allocations.
    q = torch.mul(x, (2.0**bits) / p).round_()
    return q.to(torch.float64), p.to(torch.float64).mul_(2.0**-bits)


def rmm(a: Tensor, b: Tensor) -> Tensor:
    """Reproducible ``a @ b`` for float32 (…, M, K) @ (…, K, N); see the module docstring."""
    k = a.shape[-1]
    bits = mm_bits(k)
    fused = _native.rmm(a, b, bits)
    if fused is not None:
        return fused
    qa, sa = _quantise(a, -1, bits)
    qb, sb = _quantise(b, -2, bits)
    # Integers below 2**53: exact whatever the kernel, but an all-zero sum may come out as -0
    # or +0 depending on how the kernel starts its accumulator: ``+ 0.0`` makes it +0.
    exact = torch.matmul(qa, qb).add_(0.0).mul_(sa)
    # Power-of-two scaling is exact in float64; writing the float64 product into a float32
    # output is the one rounding (the same as ``.to(torch.float32)``), without a temporary.
    out = torch.empty(exact.shape, dtype=torch.float32, device=exact.device)
    return torch.mul(exact, sb, out=out)


def rmax(x: Tensor, dim: int) -> Tensor:
    """``amax`` over ``dim`` (keepdim) with a canonical zero: the max of ``-0`` and ``+0`` is
    whichever a kernel meets first, so a zero maximum is returned as ``+0``."""
    return x.amax(dim=dim, keepdim=True).add_(0.0)


def _sqrt_step(bits: Tensor, x4: Tensor) -> Tensor:
    """-1, 0 or +1 per element: how the float32 with these ``bits`` must move to be the
    correctly rounded square root of ``x4 / 4`` (exact float64 comparisons)."""
    r64 = bits.view(torch.float32).to(torch.float64)
    # r + next(r) and r + prev(r) are exact in float64 (25 bits), their squares too (50 bits):
    # sqrt(x) >= (r + up) / 2  <=>  4x >= (r + up)**2. For r = +0 the lower neighbour's bits
    # are NaN's, for r = inf the upper one's: NaN compares false, so r stays.
    hi = (bits + 1).view(torch.float32).to(torch.float64).add_(r64)
    lo = (bits - 1).view(torch.float32).to(torch.float64).add_(r64)
    up = (x4 >= hi.mul_(hi)).to(torch.int32)
    return up.sub_((x4 < lo.mul_(lo)).to(torch.int32))


def sqrt_rn(x: Tensor) -> Tensor:
    """Correctly rounded float32 square root, whatever library computes ``torch.sqrt``.

    The library's float32 sqrt is only a candidate, which must be faithful (within one ulp):
    IEEE hardware square roots are exact, MKL's vector sqrt is within one ulp but not always
    correctly rounded (measured: 17 % of 2M random inputs one ulp off on an AMD CPU, never
    more). One exact correction step moves it to the answer: for adjacent float32 ``r < u``
    the midpoint ``(r + u) / 2`` has 25 significant bits and its square 50, so
    ``x >= ((r + u) / 2)**2`` is decided exactly in float64, and a float32 ``x`` never equals
    such a square (no ties). The step moves the bit pattern, which is monotone for
    non-negative floats. Zeros keep their sign, inf stays inf, negative inputs and NaN give
    NaN.
    """
    bits = torch.sqrt(x).view(torch.int32)
    x4 = x.to(torch.float64).mul_(4.0)
    return (bits + _sqrt_step(bits, x4)).view(torch.float32)


def rsum(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """Sum over ``dim`` by a fixed pairwise tree of elementwise adds (halving, odd tail kept)."""
    dim = dim % x.dim()
    n = x.shape[dim]
    if n > 1:
        fused = _native.rsum(x, dim, keepdim)
        if fused is not None:
            return fused
    if n == 0:
        shape = list(x.shape)
        shape[dim] = 1
        out = x.new_zeros(shape)
        return out if keepdim else out.squeeze(dim)
    while n > 1:
        h = n // 2
        parts = torch.split(x, h, dim)  # x[:h], x[h:2h] and, for odd n, the tail x[2h:] (one call)
        s = parts[0] + parts[1]
        if n % 2:
            s = torch.cat([s, parts[2]], dim)
        x = s
        n = h + n % 2
    return x if keepdim else x.squeeze(dim)


def rsum_rows(x: Tensor) -> Tensor:
    """Sum over every dimension but the last (e.g. a bias gradient)."""
    return rsum(x.reshape(-1, x.shape[-1]), 0)


def _pow2(n: Tensor) -> Tensor:
    """2**n for integral float32 n in [-126, 127], built from exponent bits (exact)."""
    return ((n.to(torch.int32) + 127) << 23).view(torch.float32)


# Taylor coefficients of exp on |r| <= ln2/2, highest first (Horner).
_EXP_COEFFS = [1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1.0, 1.0]


def rexp(x: Tensor) -> Tensor:
    """Reproducible ``exp`` for float32 (relative error ~1e-7; underflows to 0 below -87)."""
    x = x.clamp(-87.0, 88.0)
    n = torch.round(x * LOG2E)
    r = (x - n * LN2_HI) - n * LN2_LO
    p = r * _EXP_COEFFS[0] + _EXP_COEFFS[1]  # c0 * r == r * c0 bit for bit
    for c in _EXP_COEFFS[2:]:
        p.mul_(r).add_(c)
    return p.mul_(_pow2(n))


def rlog(x: Tensor) -> Tensor:
    """Reproducible natural ``log`` for positive normal float32 inputs."""
    mant, e = torch.frexp(x)  # x = mant * 2**e, mant in [0.5, 1)
    small = mant < 0.7071067811865476
    mant = torch.where(small, mant * 2.0, mant)
    ef = (e - small.to(torch.int32)).to(torch.float32)
    f = mant - 1.0
    s = f / (f + 2.0)
    s2 = s * s
    p = s2 * (2.0 / 11.0) + 2.0 / 9.0
    for c in (2.0 / 7.0, 2.0 / 5.0, 2.0 / 3.0, 2.0):
        p.mul_(s2).add_(c)
    return ef * LN2_HI + p.mul_(s).add_(ef * LN2_LO)


def rsoftmax(x: Tensor, dim: int = -1) -> Tensor:
    """Reproducible softmax over ``dim`` (max-shifted, tree-summed)."""
    e = rexp(x - rmax(x, dim))
    return e / rsum(e, dim, keepdim=True)


def rlog_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Reproducible log-softmax over ``dim``."""
    shifted = x - rmax(x, dim)
    return shifted - rlog(rsum(rexp(shifted), dim, keepdim=True))


def rmean_all(x: Tensor) -> Tensor:
    """Mean of all elements as a 0-dim tensor (tree sum, then one division)."""
    flat = x.reshape(-1)
    return rsum(flat, 0) / float(flat.numel())

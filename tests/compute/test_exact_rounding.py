"""Elementwise operators against exact references: ``sqrt_rn`` and float32 division are
correctly rounded (checked with integer/rational arithmetic on the exact value), and the
zero-sign canonicalisation of ``rmax``, ``rmm`` and ``relu`` holds."""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from compute._prims import relu
from compute.repops import rmax, rmm, sqrt_rn

F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
F32_NONNEG = st.floats(min_value=0.0, width=32, allow_nan=False, allow_infinity=False)


def _bits(x: float) -> int:
    return int(struct.unpack("<I", struct.pack("<f", x))[0])


def _from_bits(b: int) -> float:
    return float(struct.unpack("<f", struct.pack("<I", b))[0])


def _round_to_f32(q: Fraction) -> float:
    """The float32 nearest to the exact rational ``q`` >= 0 (ties to even), by bisection on
    the bit patterns (monotone for non-negative floats)."""
    lo, hi = 0, 0x7F800000  # +0 .. +inf
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if Fraction(_from_bits(mid)) <= q:
            lo = mid
        else:
            hi = mid
    a, b = _from_bits(lo), _from_bits(hi)
    if hi == 0x7F800000:  # beyond the largest finite float: overflow threshold
        big = Fraction(a) + (Fraction(a) - Fraction(_from_bits(lo - 1))) / 2
        return math.inf if q >= big else a
    da, db = q - Fraction(a), Fraction(b) - q
    if da < db or (da == db and lo % 2 == 0):
        return a
    return b


def _exact_sqrt_f32(x: float) -> float:
    """Correctly rounded float32 sqrt of the float32 ``x`` >= 0, with integer isqrt only."""
    if x == 0:
        return x
    q = Fraction(x)
    # sqrt(q) = sqrt(n / d); scale so that isqrt gives far more bits than float32 needs.
    n, d = q.numerator, q.denominator
    shift = 200
    s = math.isqrt((n << (2 * shift)) // d)  # floor(sqrt(q) * 2**shift)
    exact_floor = Fraction(s, 1 << shift)
    # sqrt(q) lies in [s, s + 1) / 2**shift, an interval far narrower than half a float32 ulp
    # and containing no float32 midpoint (none is the square root of a float32: see sqrt_rn),
    # so rounding its lower end rounds sqrt(q).
    return _round_to_f32(exact_floor)


def _sqrt_rn(x: float) -> float:
    return float(sqrt_rn(torch.tensor([x], dtype=torch.float32))[0])


@settings(max_examples=300, deadline=None)
@given(x=F32_NONNEG)
@example(x=_from_bits(1))  # the smallest subnormal
@example(x=_from_bits(0x7F7FFFFF))  # the largest finite float32
@example(x=2.0)
@example(x=1.0)
def test_sqrt_rn_is_correctly_rounded(x: float) -> None:
    assert _bits(_sqrt_rn(x)) == _bits(_exact_sqrt_f32(x))


def test_sqrt_rn_on_a_dense_range_and_special_values() -> None:
    # 200k consecutive float32 around 1 and 2**-100 and 2**100: every one correct, and
    # compared against the exact reference (integer isqrt) on a sample.
    gen = torch.Generator().manual_seed(0)
    words = torch.randint(0, 0x7F800000, (100_000,), generator=gen, dtype=torch.int64)
    x = words.to(torch.int32).view(torch.float32)
    got = sqrt_rn(x)
    for xi, gi in list(zip(x.tolist(), got.tolist(), strict=True))[:3000]:
        assert _bits(gi) == _bits(_exact_sqrt_f32(xi))
    # every element: r is the float32 nearest to sqrt(x) iff lo^2 <= x < hi^2 for the exact
    # midpoints (float64 squares of 25-bit midpoints are exact)
    r64 = got.to(torch.float64)
    up = torch.nextafter(got, torch.tensor(math.inf)).to(torch.float64)
    down = torch.nextafter(got, torch.tensor(-math.inf)).to(torch.float64)
    x64 = x.to(torch.float64)
    hi, lo = (r64 + up) / 2, (r64 + down) / 2
    assert bool(((x64 < hi * hi) & ((x64 >= lo * lo) | (got == 0))).all())
    special = torch.tensor([0.0, -0.0, math.inf, -1.0, math.nan, -math.inf])
    out = sqrt_rn(special)
    assert out[0].item() == 0.0 and math.copysign(1, out[0].item()) == 1.0
    assert math.copysign(1, out[1].item()) == -1.0
    assert out[2].item() == math.inf
    assert all(math.isnan(v) for v in out[3:].tolist())


@settings(max_examples=300, deadline=None)
@given(a=F32, b=F32.filter(lambda v: v != 0))
def test_float32_division_is_correctly_rounded(a: float, b: float) -> None:
    got = float(torch.tensor([a], dtype=torch.float32) / torch.tensor([b], dtype=torch.float32))
    q = Fraction(a) / Fraction(b)
    want = _round_to_f32(abs(q))
    want = -want if q < 0 or (q == 0 and math.copysign(1, a) != math.copysign(1, b)) else want
    if math.isinf(want):
        assert math.isinf(got) and (got > 0) == (want > 0)
    else:
        assert _bits(got) == _bits(want)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), where=st.integers(0, 69))
def test_zero_signs_are_canonical(n: int, where: int) -> None:
    x = torch.full((n,), -0.0)
    x[where % n] = 0.0
    assert math.copysign(1, float(rmax(x, 0))) == 1.0
    assert math.copysign(1, float(rmax(-x.abs(), 0))) == 1.0  # all -0
    assert all(math.copysign(1, v) == 1.0 for v in relu(x).tolist())
    # every product is -0, so the exact sum is -0; float64 GEMM/GEMV kernels return -0 or +0
    # depending on the path (here: -0 for K=1 as a (3,1)@(1,5) GEMM, +0 as a GEMV)
    for rows, cols in ((3, 5), (1, 1), (1, 5)):
        a = torch.full((rows, n), -0.0)
        b = torch.full((n, cols), 1.0)
        assert all(math.copysign(1, v) == 1.0 for v in rmm(a, b).reshape(-1).tolist())


def test_sqrt_rn_corrects_a_library_sqrt_off_by_one_ulp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gen = torch.Generator().manual_seed(1)
    words = torch.randint(0x00800000, 0x7F000000, (50_000,), generator=gen, dtype=torch.int64)
    x = words.to(torch.int32).view(torch.float32)
    x = torch.cat([x, torch.tensor([0.0, -0.0, math.inf, _from_bits(1), _from_bits(0x7F7FFFFF)])])
    want = sqrt_rn(x)
    real_sqrt = torch.sqrt
    for off in (-1, 1):

        def bad_sqrt(t: torch.Tensor, off: int = off) -> torch.Tensor:
            good = real_sqrt(t.to(torch.float64)).to(torch.float32)  # correctly rounded
            moved = (good.view(torch.int32) + off).view(torch.float32)
            return torch.where((good > 0) & (good < math.inf), moved, good)

        monkeypatch.setattr(torch, "sqrt", bad_sqrt)
        got = sqrt_rn(x)
        monkeypatch.setattr(torch, "sqrt", real_sqrt)
        assert bool((got.view(torch.int32) == want.view(torch.int32)).all()), off

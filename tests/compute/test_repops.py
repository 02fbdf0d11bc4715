"""Reproducible operators: accuracy, and independence from blocking and layout."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compute.repops import mm_bits, rexp, rlog, rmm, rsoftmax, rsum


def _bits(t: torch.Tensor) -> list[int]:
    return t.contiguous().view(torch.int32).reshape(-1).tolist()


@settings(max_examples=40)
@given(m=st.integers(1, 9), k=st.integers(1, 300), n=st.integers(1, 9), seed=st.integers(0, 999))
def test_rmm_is_accurate_and_independent_of_row_and_column_blocking(
    m: int, k: int, n: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=g)
    b = torch.randn(k, n, generator=g)
    c = rmm(a, b)
    ref = a.double() @ b.double()
    aa, bb = a.double().abs(), b.double().abs()
    # quantisation error of each operand is at most 2**-bits times its row/column max
    rowmax, colmax = aa.amax(1, keepdim=True), bb.amax(0, keepdim=True)
    bound = 2.0 ** -mm_bits(k) * (
        rowmax * bb.sum(0, keepdim=True) + aa.sum(1, keepdim=True) * colmax
    )
    assert bool(((c.double() - ref).abs() <= 1.01 * bound + ref.abs() * 2**-23).all())
    rows = torch.cat([rmm(a[i : i + 1], b) for i in range(m)], 0)
    cols = torch.cat([rmm(a, b[:, j : j + 1]) for j in range(n)], 1)
    assert _bits(rows) == _bits(c) == _bits(cols)
    assert _bits(rmm(b.t().contiguous(), a.t().contiguous()).t()) == _bits(c)


def test_rmm_is_exact_on_small_integers() -> None:
    a = torch.arange(-6.0, 6.0).view(3, 4)
    b = torch.arange(8.0).view(4, 2)
    assert torch.equal(rmm(a, b), a @ b)


@settings(max_examples=40)
@given(xs=st.lists(st.integers(-1000, 1000), min_size=0, max_size=100))
def test_rsum_is_exact_for_integers(xs: list[int]) -> None:
    t = torch.tensor(xs, dtype=torch.float32)
    assert float(rsum(t, 0)) == float(sum(xs))


def test_rsum_order_is_a_fixed_tree() -> None:
    # 1 + 1e8 - 1e8 in a different order would give 0; the tree pairs (0, 2) and (1, 3).
    t = torch.tensor([1.0, 1e8, 0.0, -1e8])
    assert float(rsum(t, 0)) == float((t[0] + t[2]) + (t[1] + t[3]))


def test_exp_log_softmax_accuracy() -> None:
    x = torch.linspace(-80, 80, 20001)
    rel = ((rexp(x).double() - torch.exp(x.double())) / torch.exp(x.double())).abs().max()
    assert rel < 3e-7
    y = torch.logspace(-30, 30, 20001)
    ref = torch.log(y.double())
    assert bool(((rlog(y).double() - ref).abs() <= 1e-6 + ref.abs() * 2**-22).all())
    assert abs(float(rlog(torch.tensor(math.e))) - 1.0) < 1e-7
    z = torch.randn(5, 11)
    assert torch.allclose(rsoftmax(z), torch.softmax(z, -1), atol=1e-6)


def test_batched_rmm_equals_per_matrix_rmm() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(5, 7, 33, generator=g)
    b = torch.randn(5, 33, 6, generator=g)
    batched = rmm(a, b)
    looped = torch.stack([rmm(a[i], b[i]) for i in range(5)])
    assert _bits(batched) == _bits(looped)

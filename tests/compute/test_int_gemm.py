"""The exact int8 limb GEMM of compute/_native.py against the float64 GEMM it may replace: the
same integers bit for bit (so the same products downstream), on random and extreme operands
(every limb at its minimum or maximum, |q| = 2**bits, zeros), at the longest reductions the
tasks use, through rmm with the limb path forced on or off and without the kernels, and in
child processes on every CPU code path torch and oneDNN offer here (ATEN_CPU_CAPABILITY,
ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA down to AVX2 and SSE4.1, where int8 GEMMs have no VNNI
and saturate int16 pair sums of full-range int8)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compute import _native, _native_mm, train
from compute._repops import mm_bits, rmm

from .test_reproducibility import _flags

ROOT = Path(__file__).resolve().parents[2]

needs_native = pytest.mark.skipif(not _native.available(), reason=f"kernels: {_native.status}")


def edge_values(bits: int) -> list[int]:
    """Integers of magnitude <= 2**bits whose limbs sit at the ends of [-64, 63]: 0, +-1,
    +-2**bits, +-(2**bits - 1), every run of low limbs all -64 or all 63, and a top limb alone
    at -64 or 63."""
    top = 2**bits
    vals = {0, 1, -1, top, -top, top - 1, 1 - top}
    for n in range(1, _native.limbs(bits) + 1):
        run = (128**n - 1) // 127
        for d in (-64, 63):
            vals.update(v for v in (d * run, d * 128 ** (n - 1)) if abs(v) <= top)
    return sorted(vals)


def _operands(m: int, k: int, n: int, bits: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """qa (m, k), qb (k, n): float64 integers, |q| <= 2**bits, a third drawn from edge values,
    with -0.0 among the zeros (integer draws only: torch.rand/randn give other numbers under
    other ATEN_CPU_CAPABILITY levels)."""
    g = torch.Generator().manual_seed(seed)
    edges = torch.tensor(edge_values(bits), dtype=torch.float64)

    def make(shape: tuple[int, int]) -> torch.Tensor:
        q = torch.randint(-(2**bits), 2**bits + 1, shape, generator=g).to(torch.float64)
        pick = torch.randint(100, shape, generator=g) < 35
        q[pick] = edges[torch.randint(len(edges), shape, generator=g)][pick]
        q[torch.randint(100, shape, generator=g) < 5] = -0.0
        return q

    return make((m, k)), make((k, n))


def _limb_product(qa: torch.Tensor, qb: torch.Tensor, bits: int) -> torch.Tensor:
    lib = _native._load()
    assert lib is not None
    out = torch.full((qa.shape[0], qb.shape[1]), float("nan"), dtype=torch.float64)
    assert _native_mm._limb_mm(lib, qa, qb, bits, out)
    return out


def _bits_of(t: torch.Tensor) -> torch.Tensor:
    return (t + 0.0).view(torch.int64)  # the +0 rule: axl_scale adds 0.0 to every sum first


def test_limb_counts_are_minimal_and_sufficient() -> None:
    for bits in range(0, 27):
        n = _native.limbs(bits)
        assert 63 * (128**n - 1) // 127 >= 2**bits  # the largest positive value fits
        assert -64 * (128**n - 1) // 127 <= -(2**bits)
        assert n == 1 or 63 * (128 ** (n - 1) - 1) // 127 < 2**bits
    assert _native.limbs(19) == 3 and _native.limbs(20) == 4 and _native.limbs(24) == 4


@needs_native
@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 40),
    k=st.integers(1, 300),
    n=st.integers(1, 40),
    extra_bits=st.integers(-6, 0),
    transpose=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_limb_gemm_equals_float64_gemm(
    m: int, k: int, n: int, extra_bits: int, transpose: bool, seed: int
) -> None:
    bits = max(0, mm_bits(k) + extra_bits)
    qa, qb = _operands(m, k, n, bits, seed)
    if transpose:  # the operands rmm hands over may be transposed views
        qa, qb = qa.t().contiguous().t(), qb.t().contiguous().t()
    assert torch.equal(_bits_of(_limb_product(qa, qb, bits)), _bits_of(torch.mm(qa, qb)))


@needs_native
@pytest.mark.parametrize("value", ["max", "min", "edges"])
@pytest.mark.parametrize("k", [32768, 131071])
def test_longest_reductions_with_every_limb_extreme(value: str, k: int) -> None:
    """K = 32768 (the CNN weight gradient) and just under the int32 bound of 3 limbs: every
    partial sum at its largest magnitude (all operands +-2**bits or all limbs at an end)."""
    bits = mm_bits(k)
    m, n = 3, 2
    if value == "edges":
        qa, qb = _operands(m, k, n, bits, k)
    else:
        top = 2**bits if value == "max" else -(2**bits)
        qa = torch.full((m, k), float(top), dtype=torch.float64)
        qb = torch.full((k, n), float(top), dtype=torch.float64)
        qa[1], qb[:, 1] = -qa[1], -qb[:, 1]
        run = -64 * (128 ** _native.limbs(bits) - 1) // 127  # every limb -64 ...
        qa[2] = float(max(run, -(2**bits)))  # ... where in range
    assert torch.equal(_bits_of(_limb_product(qa, qb, bits)), _bits_of(torch.mm(qa, qb)))


@needs_native
def test_reductions_too_long_for_int32_sums_are_refused() -> None:
    lib = _native._load()
    assert lib is not None
    k = 2**31 // (4 * 64 * 64)  # 4 limbs x K products of 2**12 reach 2**31
    qa = torch.zeros((1, k), dtype=torch.float64)
    qb = torch.zeros((k, 1), dtype=torch.float64)
    out = torch.full((1, 1), 7.0, dtype=torch.float64)
    assert not _native_mm._limb_mm(lib, qa, qb, 24, out)
    assert out.item() == 7.0
    assert _native_mm._limb_mm(lib, qa[:, : k - 1], qb[: k - 1], 24, out) and out.item() == 0.0


@contextmanager
def _limb_path(on: bool) -> Iterator[None]:
    saved = (_native.LIMB_MIN_PRODUCT, _native.LIMB_MIN_K, _native._int_gemm)
    _native.LIMB_MIN_PRODUCT, _native.LIMB_MIN_K, _native._int_gemm = 0, 0, on
    try:
        yield
    finally:
        _native.LIMB_MIN_PRODUCT, _native.LIMB_MIN_K, _native._int_gemm = saved


def _floats(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mant = torch.randint(-(2**24), 2**24 + 1, shape, generator=g).to(torch.float32)
    x = mant * torch.exp2(torch.randint(-44, -4, shape, generator=g).to(torch.float32))
    flat = x.view(-1)
    flat[torch.randperm(flat.numel(), generator=g)[: flat.numel() // 9]] = 0.0
    flat[: flat.numel() // 13] = -0.0
    x[0] = 0.0  # an all-zero row: every sum of the row is an exact zero
    return x


@needs_native
@pytest.mark.parametrize("shape", [(3, 50000, 5), (64, 1024, 96), (300, 40, 17)])
def test_rmm_same_bits_through_every_gemm_path(shape: tuple[int, int, int]) -> None:
    m, k, n = shape
    a, b = _floats((m, k), m), _floats((k, n), n)
    bias = _floats((n,), k)
    with _limb_path(True):
        limbed = [rmm(a, b), rmm(b.t(), a.t()), _native.rmm(a, b, mm_bits(k), bias)]
    with _limb_path(False):
        f64 = [rmm(a, b), rmm(b.t(), a.t()), _native.rmm(a, b, mm_bits(k), bias)]
    with _native.disabled():
        plain = [rmm(a, b), rmm(b.t(), a.t())]
    for x, y in zip(limbed, f64, strict=True):
        assert x is not None and y is not None
        assert torch.equal(x.view(torch.int32), y.view(torch.int32))
    for x, y in zip(limbed, plain, strict=False):
        assert x is not None
        assert torch.equal(x.view(torch.int32), y.view(torch.int32))


@needs_native
def test_non_finite_inputs_give_nan_in_the_same_places() -> None:
    g = torch.Generator().manual_seed(5)
    a = torch.randint(-1000, 1000, (40, 600), generator=g).to(torch.float32)
    b = torch.randint(-1000, 1000, (600, 30), generator=g).to(torch.float32)
    a[1, 3], a[2, 5], b[7, 2], b[9, 4] = float("nan"), float("inf"), float("-inf"), 3.4e38
    with _limb_path(True):
        limbed = rmm(a, b)
    with _limb_path(False):
        f64 = rmm(a, b)
    assert torch.equal(limbed.isnan(), f64.isnan()) and limbed.isnan().any()
    keep = ~f64.isnan()
    assert torch.equal(limbed[keep].view(torch.int32), f64[keep].view(torch.int32))


CHILD = """
import hashlib, json, torch
from compute import _native
from compute._repops import rmm, mm_bits
from tests.compute.test_int_gemm import _floats, _operands, _limb_product
_native.LIMB_MIN_PRODUCT = _native.LIMB_MIN_K = _native.SMALL_PRODUCT = 0
_native._int_gemm = True  # every rmm below through the limb path
h = hashlib.sha256()
for threads in (1, 2):
    torch.set_num_threads(threads)
    for i, (m, k, n) in enumerate([(5, 7, 3), (33, 300, 65), (16, 4096, 24), (2, 32768, 3)]):
        qa, qb = _operands(m, k, n, mm_bits(k), i)
        h.update((_limb_product(qa, qb, mm_bits(k)) + 0.0).numpy().tobytes())
        h.update(rmm(_floats((m, k), i), _floats((k, n), i + 1)).numpy().tobytes())
    # full-range int8 (why the limbs are 7-bit): exact only where no pair sum saturates
    a8 = torch.full((8, 64), 127, dtype=torch.int8)
    b8 = torch.full((64, 8), -128, dtype=torch.int8)
    full = torch.equal(torch._int_mm(a8, b8).long(), a8.long() @ b8.long())
print(json.dumps({"hash": h.hexdigest(), "cap": torch.backends.cpu.get_cpu_capability(),
                  "native": _native.available(), "full_range_exact": full}))
"""


def _child(extra: dict[str, str], code: str = CHILD) -> subprocess.Popen[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MKL_", "ATEN_CPU", "ONEDNN_", "DNNL_", "AXL_INT"))
    }
    env.update(extra, PYTHONWARNINGS="ignore")
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def environments() -> list[dict[str, str]]:
    """torch's CPU levels x oneDNN's ISA caps (VNNI/AMX where present, AVX2, SSE4.1)."""
    flags = _flags()
    envs: list[dict[str, str]] = [{}, {"ATEN_CPU_CAPABILITY": "default"}]
    envs.append({"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"})
    if " avx2" in flags:
        envs.append({"ATEN_CPU_CAPABILITY": "avx2"})
        envs.append({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})
        envs.append({"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "AVX2"})
    if " avx512f" in flags:
        envs.append({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})
    return envs


@needs_native
@pytest.mark.slow
def test_limb_gemm_same_bits_on_every_cpu_code_path() -> None:
    envs = environments()
    procs = [_child(env) for env in envs]
    results = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    hashes = {r["hash"] for r in results}
    assert len(hashes) == 1, list(zip(envs, results, strict=True))
    for env, res in zip(envs, results, strict=True):
        assert res["native"] is True
        if "ATEN_CPU_CAPABILITY" in env:
            assert str(res["cap"]).lower() == env["ATEN_CPU_CAPABILITY"]
    # Where the AVX2 cap changes oneDNN's code path (a CPU with AVX-512 or AVX-VNNI), the
    # capped runs take its saturating int8 path (pair sums in int16) and full-range int8
    # saturates: the danger is real on that machine's code paths, and the 7-bit limbs above
    # stayed exact through it. On an AVX2-only CPU the cap changes nothing, and there (one
    # 2-core AMD EPYC VM) every path gave exact full-range products: nothing to show.
    capped = [r for env, r in zip(envs, results, strict=True) if "MAX_CPU_ISA" in str(env)]
    mkldnn = torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]  # unannotated in torch
    flags = _flags()
    if mkldnn and " avx2" in flags and (" avx512f" in flags or " avx_vnni" in flags):
        assert any(not r["full_range_exact"] for r in capped), results
    # The same bits in this process (no caps), from the float64 GEMM's integers.
    with _limb_path(False):
        here = hashlib.sha256()
        for _threads in (1, 2):
            for i, (m, k, n) in enumerate(
                [(5, 7, 3), (33, 300, 65), (16, 4096, 24), (2, 32768, 3)]
            ):
                qa, qb = _operands(m, k, n, mm_bits(k), i)
                here.update((torch.mm(qa, qb) + 0.0).numpy().tobytes())
                out = rmm(_floats((m, k), i), _floats((k, n), i + 1))
                here.update(out.numpy().tobytes())
    assert hashes == {here.hexdigest()}


TRAIN_CHILD = """
import json, torch
from compute import _native, _native_mm, train
from tests.compute.primfuzz import primitive_hashes
from tests.compute.tasks import REPRO_SPECS
# every product through the limb path (batched ones stay float64): SMALL_PRODUCT 0 skips the
# one-call kernel for small products too
_native.LIMB_MIN_PRODUCT = _native.LIMB_MIN_K = _native.SMALL_PRODUCT = 0
_native._int_gemm = True
out = {"prims": primitive_hashes(list(REPRO_SPECS)), "roots": {}}
for threads in (1, 2):
    torch.set_num_threads(threads)
    out["roots"][threads] = [train(s).root.hex() for s in REPRO_SPECS]
print(json.dumps(out))
"""


@needs_native
@pytest.mark.slow
def test_training_through_the_limb_path_commits_the_same_roots() -> None:
    """Every primitive (real, extreme and special inputs: tests/compute/primfuzz.py) and every
    training root of the test tasks, with every unbatched product through the limb path, under
    oneDNN capped to AVX2 (saturating int8) and torch's CPU levels: the same as this process
    computes with the float64 GEMM."""
    from .primfuzz import primitive_hashes
    from .tasks import REPRO_SPECS

    envs: list[dict[str, str]] = [{}]
    if " avx2" in _flags():
        envs += [
            {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2"},
            {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"},
        ]
    procs = [_child(env, TRAIN_CHILD) for env in envs]
    results = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    assert not _native._int_gemm
    here_prims = primitive_hashes(list(REPRO_SPECS))
    here_roots = [train(s).root.hex() for s in REPRO_SPECS]
    for env, res in zip(envs, results, strict=True):
        diff = [i for i, (x, y) in enumerate(zip(res["prims"], here_prims, strict=True)) if x != y]
        assert not diff, (env, diff[:5])
        assert res["roots"] == {"1": here_roots, "2": here_roots}, env

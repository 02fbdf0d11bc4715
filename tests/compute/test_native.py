"""The compiled kernels (compute/_native.cpp) against the torch definitions they replace: the
same bits for every primitive of every task kind, on real, extreme and special inputs; the
same roots without a compiler (the torch path); hostile shapes go to the torch path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compute import _native, tensor_hash, train
from compute._prims import PRIMS
from compute._repops import rmm, rsum

from .primfuzz import SPECIALS, primitive_hashes
from .tasks import REPRO_SPECS
from .test_reproducibility import _axes

ROOT = Path(__file__).resolve().parents[2]

needs_native = pytest.mark.skipif(not _native.available(), reason=f"kernels: {_native.status}")


def _hashes(fn: object, *args: object, **kw: object) -> tuple[str, str]:
    assert callable(fn)
    fused = tensor_hash(fn(*args, **kw)).hex()
    with _native.disabled():
        plain = tensor_hash(fn(*args, **kw)).hex()
    return fused, plain


def _specials(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.exp2(torch.randint(-30, 30, shape, generator=g))
    flat = x.reshape(-1)
    pos = torch.randperm(flat.numel(), generator=g)[: max(1, flat.numel() // 7)]
    flat[pos] = torch.tensor(SPECIALS)[torch.arange(pos.numel()) % len(SPECIALS)]
    return x


@needs_native
def test_every_primitive_matches_its_torch_definition() -> None:
    labels: list[str] = []
    fused = primitive_hashes(list(REPRO_SPECS), labels)
    with _native.disabled():
        plain = primitive_hashes(list(REPRO_SPECS))
    diff = [lab for lab, a, b in zip(labels, fused, plain, strict=True) if a != b]
    assert not diff, f"{len(diff)} differ, first {diff[:5]}"


@needs_native
@pytest.mark.parametrize("special", [False, True])
def test_products_and_tree_sums_on_many_shapes(special: bool) -> None:
    def make(shape: tuple[int, ...], seed: int) -> torch.Tensor:
        if special:
            return _specials(shape, seed)
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed))

    shapes = [(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 300, 10), (130, 70, 40)]  # last: big path
    for i, (m, k, n) in enumerate(shapes):
        a, b = make((m, k), i), make((k, n), 100 + i)
        assert len(set(_hashes(rmm, a, b))) == 1, (m, k, n)
        assert len(set(_hashes(rmm, b.t(), a.t()))) == 1, (m, k, n)  # transposed operands
        a3, b3 = make((3, m, k), 7 + i), make((3, k, n), 9 + i)
        assert len(set(_hashes(rmm, a3, b3))) == 1, (m, k, n)
        assert len(set(_hashes(rmm, a3.transpose(1, 2).contiguous().transpose(1, 2), b3))) == 1
        w, bias = make((n, k), 3 + i), make((n,), 5 + i)
        assert len(set(_hashes(PRIMS["linear"], a, w, bias))) == 1, (m, k, n)
    for length in [*range(1, 40), 63, 64, 65, 127, 255, 1000]:
        x = make((3, length, 5), length)
        for dim in (0, 1, 2, -1):
            assert len(set(_hashes(rsum, x, dim, keepdim=dim == 1))) == 1, (length, dim)


@needs_native
def test_data_rng_and_convolution_moves() -> None:
    from compute._prims_data import random_bits

    for key, stream, count in [(0, 0, 1), (0xFFFFFFFF, 0x7FFFFFF1, 1000), (12345, 2**40, 77)]:
        k = torch.tensor(key, dtype=torch.int64)
        assert len(set(_hashes(random_bits, k, stream, count))) == 1, (key, stream)
    for b, c, size in [(1, 1, 4), (2, 3, 8), (3, 5, 12)]:
        x = _specials((b, c, size, size), size)
        assert len(set(_hashes(PRIMS["im2col"], x))) == 1
        cols = _specials((b * size * size, c * 9), c)
        kw = {"batch": b, "channels": c, "size": size}
        assert len(set(_hashes(PRIMS["col2im"], cols, **kw))) == 1
        zeros = torch.where(torch.rand(cols.shape) < 0.5, -0.0, 0.0)  # the sign of zero sums
        assert len(set(_hashes(PRIMS["col2im"], zeros, **kw))) == 1


@needs_native
def test_sqrt_using_kernels_on_dense_inputs() -> None:
    """Adam and layer norm use the hardware sqrt (correctly rounded) where the torch path uses
    sqrt_rn: compared on 2**18 values over the whole float32 range."""
    g = torch.Generator().manual_seed(1)
    n = 2**18
    v = torch.randint(0, 0x7F800000, (n,), generator=g, dtype=torch.int32).view(torch.float32)
    p, m = torch.randn(n, generator=g), torch.randn(n, generator=g)
    b1p, b2p = torch.tensor(0.9), torch.tensor(0.999**3)
    kw = {"lr": 1e-3, "eps": 1e-8}
    assert len(set(_hashes(PRIMS["adam_param"], p, m, v, b1p, b2p, **kw))) == 1
    x = torch.randn(512, 64, generator=g) * torch.exp2(torch.randint(-40, 40, (512, 1)))
    gamma, beta, gr = torch.randn(64), torch.randn(64), torch.randn(512, 64)
    assert len(set(_hashes(PRIMS["layernorm"], x, gamma, beta))) == 1
    assert len(set(_hashes(PRIMS["layernorm_grad_x"], x, gamma, gr))) == 1
    assert len(set(_hashes(PRIMS["layernorm_grad_gamma"], x, gr))) == 1


@needs_native
def test_hostile_inputs_take_the_torch_path_and_fail_the_same_way() -> None:
    logits = torch.randn(4, 3)
    for y in (torch.tensor([0, 1, 3, 0]), torch.tensor([0, -1, 2, 0])):
        for name in ("ce_loss", "ce_grad"):
            with pytest.raises(RuntimeError):
                PRIMS[name](logits, y)
            with _native.disabled(), pytest.raises(RuntimeError):
                PRIMS[name](logits, y)
    # Shapes the kernels do not handle are not read out of bounds: the torch path decides.
    x = torch.randn(4, 6)
    for args in [(x, torch.ones(5), torch.zeros(6)), (x, torch.ones(6), torch.zeros(1))]:
        try:
            fused: str | None = tensor_hash(PRIMS["layernorm"](*args)).hex()
        except RuntimeError:
            fused = None
        with _native.disabled():
            try:
                plain: str | None = tensor_hash(PRIMS["layernorm"](*args)).hex()
            except RuntimeError:
                plain = None
        assert fused == plain
    assert _native.rmm(torch.randn(2, 3), torch.randn(4, 2), 20) is None
    assert _native.layernorm(x, torch.ones(5), torch.zeros(6), 1e-5) is None
    assert _native.relu(torch.zeros(3, dtype=torch.float64)) is None


CHILD = """
import json, sys, torch
from compute import _native, train
from tests.compute.primfuzz import primitive_hashes
from tests.compute.tasks import REPRO_SPECS
torch.set_num_threads(1)
out = {"native": _native.available(), "status": _native.status, "isa": _native.isa(),
       "roots": [train(s).root.hex() for s in REPRO_SPECS]}
if "prims" in sys.argv:
    out["prims"] = primitive_hashes(list(REPRO_SPECS))
print(json.dumps(out))
"""


def _child(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("AXL_NATIVE", "CXX"))}
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=full,
    )


def _results(procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_fresh_build_and_no_compiler_give_the_same_roots(tmp_path: Path) -> None:
    """A fresh cache compiles the kernels on first use; without a compiler the torch path
    runs; both commit the roots of this process."""
    fresh = _child({"AXL_NATIVE_CACHE": str(tmp_path / "fresh")})
    bare = _child({"AXL_NATIVE_CACHE": str(tmp_path / "bare"), "CXX": "/nonexistent/c++"})
    out = _results([fresh, bare])
    here = [train(s).root.hex() for s in REPRO_SPECS]
    assert out[1]["native"] is False and "compiler" in str(out[1]["status"])
    assert out[1]["roots"] == here
    if _native.available():
        assert out[0]["native"] is True, out[0]["status"]
        assert list((tmp_path / "fresh").glob("axl_repops-*.so"))
    assert out[0]["roots"] == here


@needs_native
@pytest.mark.slow
def test_every_vector_isa_build_gives_the_same_bits() -> None:
    """The kernels built for each vector ISA this CPU has (baseline, AVX2, AVX-512) hash every
    primitive and commit every root exactly as this process does."""
    caps = _axes()[0]
    out = _results([_child({"AXL_NATIVE_ISA": cap}, "prims") for cap in caps])
    here = primitive_hashes(list(REPRO_SPECS))
    roots = [train(s).root.hex() for s in REPRO_SPECS]
    for cap, res in zip(caps, out, strict=True):
        assert res["native"] is True and res["status"] == f"loaded ({cap})", res["status"]
        assert res["prims"] == here, cap
        assert res["roots"] == roots, cap

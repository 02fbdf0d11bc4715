"""Compiled fused kernels for the reproducible operators (optional, bit-identical).

``_native.cpp`` holds plain C++ loops that perform, element by element, exactly the IEEE
operations of the torch definitions in :mod:`compute._repops` and :mod:`compute._prims`, in
the same order (see its header). It is compiled once, on first use, with the system C++
compiler (``$CXX`` or ``g++``) into a cache directory (``$AXL_NATIVE_CACHE``, else
``$XDG_CACHE_HOME/axl`` or ``~/.cache/axl``) and loaded with :mod:`ctypes`. Without a compiler,
with ``AXL_NATIVE=0``, or for tensors it does not handle (not float32, not on the CPU,
empty, requiring grad), every caller falls back to the torch definition, which gives the same
bits (tested in ``tests/compute/test_native.py``).

Each wrapper returns ``None`` when the kernel does not apply; the caller then runs the torch
path. This module holds the loaded library's state and the wrappers; building the library is
:mod:`._native_build`'s, the exact products' quantisation and limb GEMM :mod:`._native_mm`'s.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator

import torch
from torch import Tensor

from ._native_build import SIGNATURES, build, isa
from ._native_mm import _buffer, _limb_mm, _ptr, _quantise
from ._native_mm import limbs as limbs

_lib: ctypes.CDLL | None = None
_loaded = False
_enabled = True
status = "not loaded"


def _load() -> ctypes.CDLL | None:
    global _lib, _loaded, status
    if _loaded:
        return _lib
    _loaded = True
    if os.environ.get("AXL_NATIVE", "1") == "0":
        status = "disabled by AXL_NATIVE=0"
        return None
    errors = []
    for level in dict.fromkeys((isa(), "default")):  # a compiler without AVX-512: baseline
        try:
            lib = ctypes.CDLL(str(build(level)))
            for name, args in SIGNATURES.items():
                fn = getattr(lib, name)
                fn.argtypes = list(args)
                fn.restype = ctypes.c_int if name.startswith("axl_ce_") else None
        except (OSError, subprocess.SubprocessError, AttributeError) as exc:
            errors.append(f"{level}: {type(exc).__name__}: {exc}")
            continue
        _lib = lib
        status = f"loaded ({level})"
        return lib
    status = f"unavailable ({'; '.join(errors)}); using the torch path"
    return None


def available() -> bool:
    """Whether the compiled kernels are loaded and in use."""
    return _enabled and _load() is not None


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the torch definitions instead of the kernels inside this block (for tests)."""
    global _enabled
    before = _enabled
    _enabled = False
    try:
        yield
    finally:
        _enabled = before


def _ok(*ts: Tensor) -> ctypes.CDLL | None:
    if not _enabled:
        return None
    for t in ts:
        if t.dtype is not _F32 or not t.is_cpu or t.requires_grad or t.numel() == 0:
            return None
    return _lib if _loaded else _load()


_F32 = torch.float32


# --- exact products ---------------------------------------------------------------------

# Products of at most this many multiply-adds run entirely in one kernel call (its plain
# float64 loop beats the per-call overhead of quantise + torch GEMM + scale below this size).
SMALL_PRODUCT = 2**17

# With AXL_INT_GEMM=1, single (unbatched) products of at least LIMB_MIN_PRODUCT multiply-adds
# and K >= LIMB_MIN_K take the limb path. Off by default: on the machine measured it was
# slower than the float64 GEMM for every product shape of the benchmark tasks (no crossover;
# docs/compute.md). The bits are the same either way.
LIMB_MIN_PRODUCT = 2**24
LIMB_MIN_K = 512
_int_gemm = os.environ.get("AXL_INT_GEMM", "0") == "1"


def use_limbs(m: int, k: int, n: int) -> bool:
    """Whether an (m, k) @ (k, n) product takes the int8 limb path."""
    return _int_gemm and k >= LIMB_MIN_K and m * k * n >= LIMB_MIN_PRODUCT


def rmm(a: Tensor, b: Tensor, bits: int, bias: Tensor | None = None) -> Tensor | None:
    """``_repops.rmm(a, b)`` (+ ``bias`` in float32) for 2-D or equal-batch 3-D operands."""
    lib = _ok(a, b) if bias is None else _ok(a, b, bias)
    if lib is None or a.dim() != b.dim() or a.dim() not in (2, 3):
        return None
    if a.dim() == 3 and a.shape[0] != b.shape[0]:
        return None
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    if b.shape[-2] != k or (bias is not None and tuple(bias.shape) != (n,)):
        return None
    a3 = a if a.dim() == 3 else a.unsqueeze(0)
    b3 = b if b.dim() == 3 else b.unsqueeze(0)
    nb = a3.shape[0]
    if nb * m * n * k <= SMALL_PRODUCT:
        out = torch.empty((nb, m, n), dtype=torch.float32)
        bias = None if bias is None else bias.contiguous()  # held until the call returns
        lib.axl_rmm_small(
            _ptr(a3), nb, m, k, *a3.stride(), _ptr(b3), n, *b3.stride(), bits,
            None if bias is None else _ptr(bias), _ptr(out),
        )  # fmt: skip
        return out if a.dim() == 3 else out[0]
    qa, sa = _quantise(lib, a3, 1, bits, "a")
    qb, sb = _quantise(lib, b3, 0, bits, "b")
    # Integers below 2**53 (mm_bits): the float64 GEMM is exact in any order or blocking, and
    # so is the int8 limb GEMM, which gives the same integers (AXL_INT_GEMM=1, see above).
    exact = _buffer("out", (nb, m, n))
    limbed = nb == 1 and use_limbs(m, k, n) and _limb_mm(lib, qa[0], qb[0], bits, exact[0])
    if nb > 1:
        torch.bmm(qa, qb, out=exact)
    elif not limbed:
        torch.mm(qa[0], qb[0], out=exact[0])
    out = torch.empty((nb, m, n), dtype=torch.float32)
    bias = None if bias is None else bias.contiguous()  # held until the call returns
    bptr = None if bias is None else _ptr(bias)
    lib.axl_scale(_ptr(exact), nb, m, n, _ptr(sa), _ptr(sb), bptr, _ptr(out))
    return out if a.dim() == 3 else out[0]


# --- reductions and row-wise kernels ------------------------------------------------------


def rsum(x: Tensor, dim: int, keepdim: bool) -> Tensor | None:
    """``_repops.rsum`` (fixed pairwise tree) over ``dim``."""
    lib = _ok(x)
    if lib is None:
        return None
    x = x.contiguous()
    dim = dim % x.dim()
    shape = list(x.shape)
    outer = 1
    for s in shape[:dim]:
        outer *= s
    inner = 1
    for s in shape[dim + 1 :]:
        inner *= s
    n = shape[dim]
    shape[dim] = 1
    out = torch.empty(shape, dtype=torch.float32)
    lib.axl_rsum(_ptr(x), outer, n, inner, _ptr(out))
    return out if keepdim else out.squeeze(dim)


def _unary(name: str, x: Tensor) -> Tensor | None:
    lib = _ok(x)
    if lib is None:
        return None
    x = x.contiguous()
    out = torch.empty_like(x)
    getattr(lib, name)(_ptr(x), x.numel(), _ptr(out))
    return out


def relu(x: Tensor) -> Tensor | None:
    return _unary("axl_relu", x)


def relu_grad(g: Tensor, x: Tensor) -> Tensor | None:
    lib = _ok(g, x)
    if lib is None or g.shape != x.shape:
        return None
    g, x = g.contiguous(), x.contiguous()
    out = torch.empty_like(g)
    lib.axl_relu_grad(_ptr(g), _ptr(x), g.numel(), _ptr(out))
    return out


def _ce_args(logits: Tensor, y: Tensor) -> tuple[ctypes.CDLL, Tensor, Tensor] | None:
    lib = _ok(logits)
    if (
        lib is None
        or logits.dim() != 2
        or y.dtype != torch.int64
        or y.device.type != "cpu"
        or tuple(y.shape) != (logits.shape[0],)
    ):
        return None
    return lib, logits.contiguous(), y.contiguous()


def ce_loss(logits: Tensor, y: Tensor) -> Tensor | None:
    args = _ce_args(logits, y)
    if args is None:
        return None
    lib, logits, y = args
    out = torch.empty((), dtype=torch.float32)
    if lib.axl_ce_loss(_ptr(logits), _ptr(y), *logits.shape, _ptr(out)) != 0:
        return None  # a class id out of range: the torch path raises its error
    return out


def ce_grad(logits: Tensor, y: Tensor) -> Tensor | None:
    args = _ce_args(logits, y)
    if args is None:
        return None
    lib, logits, y = args
    out = torch.empty_like(logits)
    if lib.axl_ce_grad(_ptr(logits), _ptr(y), *logits.shape, _ptr(out)) != 0:
        return None
    return out


def causal_softmax(s: Tensor, scale: float) -> Tensor | None:
    lib = _ok(s)
    if lib is None or s.dim() < 2 or s.shape[-1] != s.shape[-2]:
        return None
    s = s.contiguous()
    t = s.shape[-1]
    out = torch.empty_like(s)
    lib.axl_causal_softmax(_ptr(s), s.numel() // (t * t), t, scale, _ptr(out))
    return out


def softmax_grad(p: Tensor, g: Tensor, scale: float) -> Tensor | None:
    lib = _ok(p, g)
    if lib is None or p.shape != g.shape or p.dim() < 1:
        return None
    p, g = p.contiguous(), g.contiguous()
    n = p.shape[-1]
    out = torch.empty_like(p)
    lib.axl_softmax_grad(_ptr(p), _ptr(g), p.numel() // n, n, scale, _ptr(out))
    return out


def _rows(x: Tensor, *vecs: Tensor) -> tuple[int, int] | None:
    if x.dim() < 1:
        return None
    d = x.shape[-1]
    if any(tuple(v.shape) != (d,) for v in vecs):
        return None
    return x.numel() // d, d


def layernorm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> Tensor | None:
    lib = _ok(x, gamma, beta)
    rd = None if lib is None else _rows(x, gamma, beta)
    if lib is None or rd is None:
        return None
    x, gamma, beta = x.contiguous(), gamma.contiguous(), beta.contiguous()
    out = torch.empty_like(x)
    lib.axl_layernorm(_ptr(x), _ptr(gamma), _ptr(beta), *rd, eps, _ptr(out))
    return out


def layernorm_grad_x(x: Tensor, gamma: Tensor, g: Tensor, eps: float) -> Tensor | None:
    lib = _ok(x, gamma, g)
    rd = None if lib is None else _rows(x, gamma)
    if lib is None or rd is None or g.shape != x.shape:
        return None
    x, gamma, g = x.contiguous(), gamma.contiguous(), g.contiguous()
    out = torch.empty_like(x)
    lib.axl_layernorm_grad_x(_ptr(x), _ptr(gamma), _ptr(g), *rd, eps, _ptr(out))
    return out


def layernorm_grad_gamma(x: Tensor, g: Tensor, eps: float) -> Tensor | None:
    lib = _ok(x, g)
    rd = None if lib is None else _rows(x)
    if lib is None or rd is None or g.shape != x.shape:
        return None
    x, g = x.contiguous(), g.contiguous()
    out = torch.empty(x.shape[-1], dtype=torch.float32)
    lib.axl_layernorm_grad_gamma(_ptr(x), _ptr(g), *rd, eps, _ptr(out))
    return out


# --- optimiser ----------------------------------------------------------------------------


def adam_moment(which: str, m: Tensor, g: Tensor, beta: float) -> Tensor | None:
    """``adam_m`` / ``adam_v``: m * beta + g * (1 - beta) (resp. (g * g) * (1 - beta))."""
    lib = _ok(m, g)
    if lib is None or m.shape != g.shape:
        return None
    m, g = m.contiguous(), g.contiguous()
    out = torch.empty_like(m)
    fn = lib.axl_adam_m if which == "m" else lib.axl_adam_v
    fn(_ptr(m), _ptr(g), m.numel(), beta, 1.0 - beta, _ptr(out))
    return out


def adam_param(
    p: Tensor, m: Tensor, v: Tensor, b1p: Tensor, b2p: Tensor, lr: float, eps: float
) -> Tensor | None:
    lib = _ok(p, m, v, b1p, b2p)
    if lib is None or not (p.shape == m.shape == v.shape) or b1p.dim() or b2p.dim():
        return None
    p, m, v = p.contiguous(), m.contiguous(), v.contiguous()
    out = torch.empty_like(p)
    lib.axl_adam_param(
        _ptr(p), _ptr(m), _ptr(v), _ptr(b1p), _ptr(b2p), p.numel(), lr, eps, _ptr(out)
    )
    return out


# --- data and convolution moves -------------------------------------------------------------


def random_bits(base: int, count: int, device: torch.device) -> Tensor | None:
    """The ``count`` 32-bit words (int64) of ``_prims.random_bits`` for a hashed ``base``."""
    if not _enabled or device.type != "cpu" or count <= 0:
        return None
    lib = _load()
    if lib is None:
        return None
    out = torch.empty(count, dtype=torch.int64)
    lib.axl_random_bits(base, count, _ptr(out))
    return out


def im2col(x: Tensor) -> Tensor | None:
    lib = _ok(x)
    if lib is None or x.dim() != 4:
        return None
    x = x.contiguous()
    b, c, h, w = x.shape
    out = torch.empty((b * h * w, c * 9), dtype=torch.float32)
    lib.axl_im2col(_ptr(x), b, c, h, w, _ptr(out))
    return out


def col2im(cols: Tensor, batch: int, channels: int, size: int) -> Tensor | None:
    lib = _ok(cols)
    if lib is None or tuple(cols.shape) != (batch * size * size, channels * 9):
        return None
    cols = cols.contiguous()
    out = torch.empty((batch, channels, size, size), dtype=torch.float32)
    lib.axl_col2im(_ptr(cols), batch, channels, size, size, _ptr(out))
    return out

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
path.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("_native.cpp")
# IEEE semantics: no contraction into FMA, no reassociation or reciprocals, no flush to zero;
# the baseline ISA of the target (no -march), no threads.
FLAGS = (
    "-O3",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-fno-associative-math",
    "-fno-reciprocal-math",
    "-fno-finite-math-only",
    "-fno-math-errno",
    "-fno-trapping-math",  # FP exception flags are never read; results are unchanged
)

# Vector ISA of the build (x86-64 only; elsewhere the baseline): the same IEEE operations in
# wider registers, so every level gives the same bits (the child-process matrix in
# tests/compute/test_reproducibility.py runs each level through ATEN_CPU_CAPABILITY, which
# picks it unless AXL_NATIVE_ISA names one). FMA stays off at every level.
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "avx2": ("-mavx2", "-mno-fma"),
    "avx512": ("-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mno-fma"),
}

_lib: ctypes.CDLL | None = None
_loaded = False
_enabled = True
status = "not loaded"

_P = ctypes.c_void_p
_I = ctypes.c_int64
_F = ctypes.c_float
_SIGNATURES: dict[str, tuple[type, ...]] = {
    "axl_quant": (_P, _I, _I, _I, ctypes.c_int, ctypes.c_int, _P, _P),
    "axl_scale": (_P, _I, _I, _I, _P, _P, _P, _P),
    "axl_rmm_small": (_P, _I, _I, _I, _I, _I, _I, _P, _I, _I, _I, _I, ctypes.c_int, _P, _P),
    "axl_rsum": (_P, _I, _I, _I, _P),
    "axl_relu": (_P, _I, _P),
    "axl_relu_grad": (_P, _P, _I, _P),
    "axl_ce_loss": (_P, _P, _I, _I, _P),
    "axl_ce_grad": (_P, _P, _I, _I, _P),
    "axl_causal_softmax": (_P, _I, _I, _F, _P),
    "axl_softmax_grad": (_P, _P, _I, _I, _F, _P),
    "axl_layernorm": (_P, _P, _P, _I, _I, _F, _P),
    "axl_layernorm_grad_x": (_P, _P, _P, _I, _I, _F, _P),
    "axl_layernorm_grad_gamma": (_P, _P, _I, _I, _F, _P),
    "axl_adam_m": (_P, _P, _I, _F, _F, _P),
    "axl_adam_v": (_P, _P, _I, _F, _F, _P),
    "axl_adam_param": (_P, _P, _P, _P, _P, _I, _F, _F, _P),
    "axl_random_bits": (_I, _I, _P),
    "axl_im2col": (_P, _I, _I, _I, _I, _P),
    "axl_col2im": (_P, _I, _I, _I, _I, _P),
    "axl_limbs": (_P, _I, _I, _I, ctypes.c_int, ctypes.c_int, ctypes.c_int, _P),
    "axl_limb_sum": (_P, _I, _I, _P),
}


def _cache_dir() -> Path:
    explicit = os.environ.get("AXL_NATIVE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "axl"


def isa() -> str:
    """The vector ISA the kernels are built for in this process (a key of ISA_FLAGS)."""
    chosen = os.environ.get("AXL_NATIVE_ISA", "").lower()
    if chosen in ISA_FLAGS:
        return chosen
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "default"
    cap = torch.backends.cpu.get_cpu_capability().lower()
    return cap if cap in ISA_FLAGS else "default"


def _build(level: str) -> Path:
    """Compile the library for ``level`` into the cache (once per source/flags/compiler)."""
    flags = (*FLAGS, *ISA_FLAGS[level])
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        raise OSError(f"no C++ compiler ({os.environ.get('CXX', 'g++')!r} not found)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
    key = hashlib.sha256(
        SOURCE.read_bytes() + " ".join(flags).encode() + version.stdout.encode()
    ).hexdigest()[:16]
    cache = _cache_dir()
    target = cache / f"axl_repops-{key}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    try:
        done = subprocess.run(
            [cxx, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise OSError(f"{cxx} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, target)  # atomic: concurrent builders race harmlessly
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


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
            lib = ctypes.CDLL(str(_build(level)))
            for name, args in _SIGNATURES.items():
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


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


# --- exact products ---------------------------------------------------------------------


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


# Products of at most this many multiply-adds run entirely in one kernel call (its plain
# float64 loop beats the per-call overhead of quantise + torch GEMM + scale below this size).
SMALL_PRODUCT = 2**17


# The exact int8 limb GEMM: each quantised operand (|q| <= 2**bits) is split into balanced
# 7-bit limbs, q = sum_l d_l * 128**l with d_l in [-64, 63]; for each shift s the limb pairs
# (i, s - i) run as one torch._int_mm (int32 sums) over the limbs stacked along K; the int32
# sums combine exactly in int64 into the same integer the float64 GEMM gives. 7 bits, not 8:
# int8 GEMMs without VNNI (oneDNN's AVX2 path: vpmaddubsw on a + 128) saturate int16 pair sums
# of full-range int8 (tests/compute/test_int_gemm.py shows it under ONEDNN_MAX_CPU_ISA=AVX2);
# with 7-bit limbs a pair sum is at most 2 * 191 * 64 < 2**15.
# Every int32 partial sum holds at most limbs(bits) * K products of magnitude <= 2**12.
INT32_LIMIT = 2**31
# With AXL_INT_GEMM=1, single (unbatched) products of at least LIMB_MIN_PRODUCT multiply-adds
# and K >= LIMB_MIN_K take the limb path. Off by default: on the machine measured it was
# slower than the float64 GEMM for every product shape of the benchmark tasks (no crossover;
# docs/compute.md). The bits are the same either way.
LIMB_MIN_PRODUCT = 2**24
LIMB_MIN_K = 512
_int_gemm = os.environ.get("AXL_INT_GEMM", "0") == "1"


def limbs(bits: int) -> int:
    """The number of balanced 7-bit limbs that hold every integer of magnitude <= 2**bits."""
    n = 1
    while 63 * (128**n - 1) // 127 < 2**bits:
        n += 1
    return n


def use_limbs(m: int, k: int, n: int) -> bool:
    """Whether an (m, k) @ (k, n) product takes the int8 limb path."""
    return _int_gemm and k >= LIMB_MIN_K and m * k * n >= LIMB_MIN_PRODUCT


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

"""Building the compiled kernels: the compiler flags (IEEE semantics, per vector ISA), the
choice of ISA for this process, the cache the library is compiled into once, and the C
signatures of its entry points. Loading it and calling it are :mod:`compute._native`'s."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

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

_P = ctypes.c_void_p
_I = ctypes.c_int64
_F = ctypes.c_float
SIGNATURES: dict[str, tuple[type, ...]] = {
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


def build(level: str) -> Path:
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

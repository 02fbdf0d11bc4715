"""Bit-identity of every primitive and of whole training runs across the honest CPU code
paths: ``ATEN_CPU_CAPABILITY`` (torch's kernels) x ``MKL_ENABLE_INSTRUCTIONS`` and
``MKL_CBWR`` (MKL's code path: GEMM and vector math such as sqrt) x threads (1, 2, 4).

Each environment runs in its own child process (torch and MKL read these variables once, at
load). The environments are a pairwise covering of the three variables (every pair of values
of any two variables occurs in some child), which keeps CI time bounded; each child trains
every task (MLP, CNN, transformer; SGD and Adam) under 1, 2 and 4 threads and hashes every
primitive of every task on real, extreme and special inputs (tests/compute/primfuzz.py), with
the compiled kernels of compute/_native.cpp where a compiler is present (test_native.py
compares them with the torch definitions). All must equal what this process computes.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from compute import SGD, Adam, TaskSpec, _native, train

from .primfuzz import primitive_hashes
from .tasks import REPRO_SPECS

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import hashlib, json, sys, torch
from compute import TaskSpec, _native, train
from tests.compute.primfuzz import primitive_hashes
specs = [TaskSpec.parse(s) for s in json.loads(sys.stdin.read())]
probe = torch.linspace(0.001, 1000.0, 4099, dtype=torch.float32)
out = {"cap": torch.backends.cpu.get_cpu_capability(), "roots": {}, "native": _native.available(),
       "mkl_sqrt": hashlib.sha256(torch.sqrt(probe).numpy().tobytes()).hexdigest()[:12]}
torch.set_num_threads(2)
out["prims"] = primitive_hashes(specs)
for threads in (1, 2, 4):
    torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    out["roots"][threads] = [train(s).root.hex() for s in specs]
print(json.dumps(out))
"""


def _flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _axes() -> tuple[list[str], list[str | None], list[str | None]]:
    flags = _flags()
    avx2 = " avx2" in flags
    avx512 = " avx512f" in flags and " avx512bw" in flags
    caps = ["default"] + (["avx2"] if avx2 else []) + (["avx512"] if avx512 else [])
    isa: list[str | None] = ["SSE4_2"]
    isa += ["AVX2"] if avx2 else []
    isa += ["AVX512"] if avx512 else []
    cbwr: list[str | None] = [None, "COMPATIBLE"] + (["AVX2"] if avx2 else [])
    cbwr += ["AVX512"] if avx512 else []
    return caps, isa, cbwr


def environments() -> list[dict[str, str]]:
    """A pairwise covering of (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, MKL_CBWR)."""
    caps, isa, cbwr = _axes()
    full = list(itertools.product(caps, isa, cbwr))
    needed = {
        (i, j, a, b)
        for combo in full
        for (i, a), (j, b) in itertools.combinations(enumerate(combo), 2)
    }
    chosen: list[tuple[str, str | None, str | None]] = []
    while needed:
        best = max(
            full,
            key=lambda c: sum(
                (i, j, a, b) in needed for (i, a), (j, b) in itertools.combinations(enumerate(c), 2)
            ),
        )
        chosen.append(best)
        needed -= {(i, j, a, b) for (i, a), (j, b) in itertools.combinations(enumerate(best), 2)}
    envs = []
    for cap, mkl_isa, mkl_cbwr in chosen:
        env = {"ATEN_CPU_CAPABILITY": cap}
        if mkl_isa is not None:
            env["MKL_ENABLE_INSTRUCTIONS"] = mkl_isa
        if mkl_cbwr is not None:
            env["MKL_CBWR"] = mkl_cbwr
        envs.append(env)
    return envs


def _child(extra: dict[str, str], payload: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MKL_", "ATEN_CPU"))}
    env.update(extra, PYTHONWARNINGS="ignore")
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=payload,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_environments_cover_every_pair() -> None:
    envs = environments()
    caps, isa, cbwr = _axes()
    seen = {(e["ATEN_CPU_CAPABILITY"], e.get("MKL_ENABLE_INSTRUCTIONS")) for e in envs}
    assert seen == set(itertools.product(caps, isa))
    seen2 = {(e.get("MKL_ENABLE_INSTRUCTIONS"), e.get("MKL_CBWR")) for e in envs}
    assert seen2 == set(itertools.product(isa, cbwr))
    assert len(envs) < len(caps) * len(isa) * len(cbwr) or len(envs) <= 4


@pytest.mark.slow
def test_primitives_and_roots_identical_across_cpu_paths_and_threads() -> None:
    payload = json.dumps([s.model_dump_json() for s in REPRO_SPECS])
    envs = environments()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda e: _child(e, payload), envs))
    here_roots = [train(s).root.hex() for s in REPRO_SPECS]
    here_prims = primitive_hashes(list(REPRO_SPECS))
    for env, res in zip(envs, results, strict=True):
        assert str(res["cap"]).lower() == env["ATEN_CPU_CAPABILITY"], "capability not applied"
        assert res["native"] == _native.available(), "compiled kernels not (or only) used here"
        prims = res["prims"]
        assert isinstance(prims, list) and len(prims) == len(here_prims)
        diff = [i for i, (x, y) in enumerate(zip(prims, here_prims, strict=True)) if x != y]
        assert not diff, f"{len(diff)} primitive outputs differ under {env} (first {diff[:5]})"
        roots = res["roots"]
        assert isinstance(roots, dict) and sorted(roots) == ["1", "2", "4"]
        for threads, got in roots.items():
            assert got == here_roots, f"roots differ under {env} with {threads} threads"


@pytest.mark.parametrize("opt", [SGD(lr=0.1, momentum=0.9, weight_decay=1e-3), Adam(lr=1e-2)])
def test_run_to_run_identical_and_seed_sensitive(opt: SGD | Adam) -> None:
    spec = TaskSpec(steps=4, optimizer=opt)
    a, b = train(spec), train(spec)
    assert a.hashes == b.hashes
    assert a.root == b.root
    other = train(spec.model_copy(update={"seed": 1}))
    assert other.root != a.root

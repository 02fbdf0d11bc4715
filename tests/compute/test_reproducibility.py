"""Bit-identity of training across runs, thread counts (1, 2, 4) and ATEN_CPU_CAPABILITY.

Each CPU capability runs in its own child process (torch reads ATEN_CPU_CAPABILITY once, at
import); the child trains every task under 1, 2 and 4 threads (torch.set_num_threads) and
prints the trace roots; all must equal the roots computed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from compute import SGD, Adam, TaskSpec, train

from .tasks import REPRO_SPECS

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys, torch
from compute import TaskSpec, train
specs = [TaskSpec.parse(s) for s in json.loads(sys.stdin.read())]
out = {"cap": torch.backends.cpu.get_cpu_capability(), "roots": {}}
for threads in (1, 2, 4):
    torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    out["roots"][threads] = [train(s).root.hex() for s in specs]
print(json.dumps(out))
"""


def _capabilities() -> list[str]:
    caps = ["default", "avx2"]
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ["default"]
    if " avx2" not in flags:
        return ["default"]
    if " avx512f" in flags and " avx512bw" in flags:
        caps.append("avx512")
    return caps


def _child(cap: str, payload: str) -> dict[str, object]:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=payload,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_roots_identical_across_threads_and_cpu_capabilities() -> None:
    payload = json.dumps([s.model_dump_json() for s in REPRO_SPECS])
    caps = _capabilities()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda cap: _child(cap, payload), caps))
    here = [train(s).root.hex() for s in REPRO_SPECS]
    for cap, res in zip(caps, results, strict=True):
        assert str(res["cap"]).lower() == cap, "ATEN_CPU_CAPABILITY was not applied"
        roots = res["roots"]
        assert isinstance(roots, dict) and sorted(roots) == ["1", "2", "4"]
        for threads, got in roots.items():
            assert got == here, f"roots differ under {cap} with {threads} threads"


@pytest.mark.parametrize("opt", [SGD(lr=0.1, momentum=0.9, weight_decay=1e-3), Adam(lr=1e-2)])
def test_run_to_run_identical_and_seed_sensitive(opt: SGD | Adam) -> None:
    spec = TaskSpec(steps=4, optimizer=opt)
    a, b = train(spec), train(spec)
    assert a.hashes == b.hashes
    assert a.root == b.root
    other = train(spec.model_copy(update={"seed": 1}))
    assert other.root != a.root

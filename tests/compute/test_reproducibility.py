"""Bit-identity of training across runs, thread counts (1, 2, 4) and ATEN_CPU_CAPABILITY.

Each setting runs in a child process (the capability is read once at torch import), trains one
small task per model kind and optimiser, and prints the trace roots; all must be equal.
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
torch.set_num_threads(int(sys.argv[1]))
from compute import TaskSpec, train
specs = [TaskSpec.parse(s) for s in json.loads(sys.stdin.read())]
print(json.dumps({"cap": torch.backends.cpu.get_cpu_capability(),
                  "threads": torch.get_num_threads(),
                  "roots": [train(s).root.hex() for s in specs]}))
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


def _child(cap: str, threads: int, payload: str) -> dict[str, object]:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads)],
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
    settings = [(cap, t) for cap in _capabilities() for t in (1, 2, 4)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda s: _child(s[0], s[1], payload), settings))
    here = [train(s).root.hex() for s in REPRO_SPECS]
    for (cap, threads), res in zip(settings, results, strict=True):
        assert res["threads"] == threads
        assert str(res["cap"]).lower() == cap, "ATEN_CPU_CAPABILITY was not applied"
        assert res["roots"] == here, f"roots differ under {cap} with {threads} threads"


@pytest.mark.parametrize("opt", [SGD(lr=0.1, momentum=0.9, weight_decay=1e-3), Adam(lr=1e-2)])
def test_run_to_run_identical_and_seed_sensitive(opt: SGD | Adam) -> None:
    spec = TaskSpec(steps=4, optimizer=opt)
    a, b = train(spec), train(spec)
    assert a.hashes == b.hashes
    assert a.root == b.root
    other = train(spec.model_copy(update={"seed": 1}))
    assert other.root != a.root

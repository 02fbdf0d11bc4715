"""How fast the machine ran while a benchmark measured: a probe for shared VMs.

CPU per message on a shared VM moves with the VM's own speed (its neighbours, the host's
clock): in the issue-12 rounds the same code measured 0.96 to 1.24 ms per delivered message at
40 processes, as far apart as the changes being compared (docs/libp2p.md). The probe runs
beside the benchmark a fixed work unit of the kind the nodes do (decode and verify one signed
AXL envelope, then some dict and set work in pure Python) at the lowest priority (nice 19),
so it takes only CPU the benchmark leaves idle, and reports the CPU time one unit took.
That cost follows what slows the nodes down — a slower host clock, caches shared with the
neighbours — whatever share of the machine the probe gets, so two runs' CPU per message
can be compared once each is divided by its probe's (the ratio is printed: smaller is
cheaper). It shares the machine's caches with the swarm, so it is opt-in (``--probe``).

    python -m benchmarks._speed SECONDS   # prints: units, CPU seconds, µs per unit
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

from axl import Identity

from ._report import decode_and_verify, signed_frame

PROBE_NICENESS = 19


def _frame() -> bytes:
    ident = Identity.from_seed(b"\x07" * 32)
    return signed_frame(ident, ident.peer_id, "bench.speed", 0, b"x" * 64)


def work_unit(frame: bytes) -> int:
    """One unit: decode and verify ``frame``, then pure-Python dict and set work."""
    decode_and_verify(frame)
    counts: dict[int, int] = {}
    for i in range(300):
        counts[i & 31] = counts.get(i & 31, 0) + i
        pair = {i, i + 1}
        pair.discard(i)
    return len(counts)


def run_units(seconds: float) -> tuple[int, float]:
    """Work units done over ``seconds`` of wall time, and the CPU seconds they took."""
    frame = _frame()
    end = time.monotonic() + seconds
    units, began = 0, time.process_time()
    while time.monotonic() < end:
        for _ in range(20):
            work_unit(frame)
        units += 20
    return units, time.process_time() - began


@dataclass
class Probe:
    """A running probe (:func:`start_probe`); :meth:`result` waits for it."""

    process: subprocess.Popen[str]

    def result(self, timeout: float = 30.0) -> tuple[int, float] | None:
        """(units, CPU seconds), or None when the probe failed or is not done ``timeout`` s
        from now (it is then killed: a probe never outlives the benchmark)."""
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return None
        try:
            units, cpu = out.split()[:2]
            return int(units), float(cpu)
        except ValueError:
            return None


def start_probe(seconds: float) -> Probe:
    """Start the probe in a child process at the lowest priority for ``seconds``."""
    command = [sys.executable, "-m", "benchmarks._speed", repr(seconds)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    return Probe(process)


def main() -> int:
    os.nice(PROBE_NICENESS)  # only CPU the benchmark leaves idle
    units, cpu = run_units(float(sys.argv[1]))
    print(units, cpu, f"{1e6 * cpu / max(1, units):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

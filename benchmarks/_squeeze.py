"""Take a fixed share of the machine's CPU away from a benchmark's processes.

A swarm that saturates the machine spends all of it, so its CPU per message is the
machine's capacity divided by the messages, whatever the code needs (docs/libp2p.md, the
fourteenth round). Squeezed — its processes reniced below a CPU hog that asks for ``cores``
of the machine — it has to batch, and spends less CPU per message. The hog's share is not
exact (it sleeps between bursts and the scheduler decides when it runs again: 0.2 to 0.5 cores
for 0.4 asked, on the 2-core test machine), so compare runs by the cores the swarm actually
got (the benchmark prints both). Unprivileged: a process may raise its own children's
niceness.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

NODE_NICENESS = 10
"""Niceness of the squeezed processes (CFS weight 110 against the hog's 1,024)."""

_HOG = """
import sys, time
duty = float(sys.argv[1])
while True:
    end = time.perf_counter() + 0.01 * duty
    while time.perf_counter() < end:
        pass
    time.sleep(0.01 * (1 - duty))
"""


def hog_duties(cores: float) -> list[float]:
    """The duty cycles of the hog processes that ask for ``cores``: one per started core, each
    busy at most 90 % of the time (a process that never sleeps is preempted less fairly)."""
    if cores <= 0:
        return []
    count = math.ceil(cores / 0.9)
    return [cores / count] * count


@contextmanager
def squeezed(cores: float, pids: Iterable[int]) -> Iterator[None]:
    """Renice ``pids`` to :data:`NODE_NICENESS` and run CPU hogs asking for ``cores`` until the
    block ends (the niceness stays: an unprivileged process cannot lower it again)."""
    duties = hog_duties(cores)
    if not duties:
        yield
        return
    for pid in pids:
        with suppress(OSError):  # gone meanwhile
            os.setpriority(os.PRIO_PROCESS, pid, NODE_NICENESS)
    hogs = [subprocess.Popen([sys.executable, "-c", _HOG, repr(duty)]) for duty in duties]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()

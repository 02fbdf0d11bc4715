"""``benchmarks._squeeze``: a fixed share of the machine held away from a benchmark."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks._squeeze import NODE_NICENESS, hog_duties, squeezed


@pytest.mark.parametrize(
    ("cores", "duties"),
    [(0.0, []), (0.4, [0.4]), (0.9, [0.9]), (1.0, [0.5, 0.5]), (1.5, [0.75, 0.75])],
)
def test_the_hog_holds_the_cores_asked_for_at_most_90_percent_each(
    cores: float, duties: list[float]
) -> None:
    assert hog_duties(cores) == pytest.approx(duties)
    assert sum(hog_duties(cores)) == pytest.approx(cores)


def test_a_squeeze_renices_the_processes_and_stops_its_hogs() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        before = set(_children())
        with squeezed(0.2, [child.pid]):
            assert os.getpriority(os.PRIO_PROCESS, child.pid) == NODE_NICENESS
            hogs = set(_children()) - before
            assert len(hogs) == 1  # one hog process for 0.2 cores
        assert not set(_children()) & hogs  # killed and reaped
    finally:
        child.kill()
        child.wait()


def test_no_squeeze_touches_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        before = set(_children())
        with squeezed(0.0, [child.pid]):
            assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0)
            assert set(_children()) == before
    finally:
        child.kill()
        child.wait()


def _children() -> list[int]:
    """This process's child pids (Linux /proc)."""
    path = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
    with open(path) as children:
        return [int(pid) for pid in children.read().split()]

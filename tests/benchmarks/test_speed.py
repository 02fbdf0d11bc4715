"""The machine-speed probe (``benchmarks/_speed.py``): it does work, reports it, runs as a
niced child process, and its unit really verifies a signature (a tampered frame fails)."""

from __future__ import annotations

import os
import time

import pytest

from benchmarks._speed import _frame, run_units, start_probe, work_unit


def test_the_unit_verifies_its_frame_and_refuses_a_tampered_one() -> None:
    frame = _frame()
    assert work_unit(frame) == 32
    tampered = bytearray(frame)
    tampered[-1] ^= 1  # a byte of the signed frame
    with pytest.raises(AssertionError):
        work_unit(bytes(tampered))


def test_units_are_counted_with_their_cpu_time() -> None:
    units, cpu = run_units(0.2)
    assert units >= 20 and units % 20 == 0
    assert 0 < cpu < 5


def test_the_probe_runs_niced_in_a_child_and_reports() -> None:
    probe = start_probe(1.0)
    deadline = time.monotonic() + 0.9
    while os.getpriority(os.PRIO_PROCESS, probe.process.pid) != 19:
        assert time.monotonic() < deadline, "the probe never took nice 19"
        time.sleep(0.01)
    result = probe.result()
    assert result is not None
    units, cpu = result
    assert units > 0 and cpu > 0
    assert probe.process.returncode == 0


def test_a_probe_not_done_in_time_is_killed_and_reports_nothing() -> None:
    probe = start_probe(60.0)
    assert probe.result(timeout=0.5) is None
    assert probe.process.returncode is not None  # killed, not left running

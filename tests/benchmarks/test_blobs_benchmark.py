"""The blob benchmark stays runnable (its figures are not asserted: no timing asserts)."""

from __future__ import annotations

import math

import pytest

from benchmarks import blobs


def test_blobs_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    blobs.main(["--quick"])
    output = capsys.readouterr().out
    assert "ratio AXL 1 holder / raw" in output
    assert "AXL 3 holders / 1 holder (median)" in output
    assert "peak RSS growth" in output
    assert "CPU ratio raw / AXL 1 holder" in output and "load average" in output
    assert "AXL first fetch (holder's first-read check)" in output
    assert "storage reads in timed transfers, raw" in output


def test_blobs_benchmark_threads_ab_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blobs.main(["--ab-threads", "2", "--sizes", "1"])
    output = capsys.readouterr().out
    for variant in ("threads", "inline"):
        assert f"{variant}: wall ratio AXL / raw (median)" in output
        assert f"{variant} wall ratios per round:" in output
    assert "load average" in output


def test_a_cpu_ratio_over_no_measured_cpu_is_nan_not_an_error() -> None:
    """CPU times come in clock ticks: a quick run's transfer can take less than one (CI once
    failed on a division by zero here)."""
    assert blobs.ratio(3.0, 2.0) == 1.5
    assert math.isnan(blobs.ratio(0.01, 0.0))

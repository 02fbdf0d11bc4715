"""The benchmark stays runnable (its figures are not asserted: no timing asserts in tests)."""

from __future__ import annotations

import pytest

from benchmarks import bus_throughput


def test_bus_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    bus_throughput.main(["--quick"])
    output = capsys.readouterr().out
    assert "ratio bus/floor throughput" in output
    assert "floor: encode + sign + verify" in output
    assert "request/response, trusted-local" in output
    assert "ratio trusted-local/Bureau" in output

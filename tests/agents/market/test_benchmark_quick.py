"""The market benchmark stays runnable (figures are printed, not asserted: no timing asserts)."""

from __future__ import annotations

import pytest

from benchmarks import market


def test_market_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    market.main(["--jobs", "3"])
    output = capsys.readouterr().out
    for label in ("jobs settled per second", "share in chain calls", "ratio market wall"):
        assert label in output

"""The compute benchmark stays runnable (its figures are not asserted)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import compute_repro


def test_compute_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    before = torch.get_num_threads()
    try:
        compute_repro.main(["--quick", "--threads", "1"])
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert "ratio reproducible/plain" in out
    assert "ratio referee (incl. program build)/full job" in out
    assert "winner b" in out
    assert "reproducible True" in out

"""The settlement benchmark stays runnable (its figures are not asserted)."""

from __future__ import annotations

import pytest

from benchmarks import chain_settlement


def test_chain_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    chain_settlement.main(["--quick", "--no-anvil"])
    out = capsys.readouterr().out
    assert "ratio tx per job unbatched/batched" in out
    assert "anchor: simple tx/s" in out
    assert "anvil" not in out

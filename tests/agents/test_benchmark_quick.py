"""The agents benchmark stays runnable (figures are printed, not asserted: no timing asserts)."""

from __future__ import annotations

import pytest

from benchmarks import agents_scale


def test_agents_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    agents_scale.main(["--quick"])
    output = capsys.readouterr().out
    assert "idle agent: RSS per agent" in output
    assert "ratio agents/crypto floor" in output
    handled = [row for row in output.splitlines() if "messages handled per simulated" in row]
    assert len(handled) == 2
    assert all(row.split()[-2] == "200.0" for row in handled)  # every message arrived

"""The swarm benchmark stays runnable (its figures are not asserted: no timing asserts)."""

from __future__ import annotations

import pytest

from benchmarks import swarm


@pytest.mark.slow
def test_swarm_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    swarm.main(["--quick"])
    output = capsys.readouterr().out
    assert "anchor: chain transactions/s" in output
    assert "the simulated hour + drain (wall)" in output
    assert '"conserved": true' in output

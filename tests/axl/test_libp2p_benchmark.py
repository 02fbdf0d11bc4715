"""The libp2p benchmark stays runnable (its figures are not asserted: no timing asserts)."""

from __future__ import annotations

import pytest

from benchmarks import libp2p_transport


def test_libp2p_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    libp2p_transport.main(["--quick"])
    output = capsys.readouterr().out
    assert "ratio AXL/raw round trips/s" in output
    assert "ratio AXL/raw one-way msgs/s" in output
    assert "AXL topic deliveries" in output
    assert "two processes" in output
    assert output.count("ratio AXL/raw round trips/s") == 2  # one process, two processes
    assert output.count("one-way: frames per stream write") == 2
    assert output.count("wire bytes per one-way message: AXL") == 2
    assert "CPU per 1,000 AXL rt (server)" in output


def test_gossip_cost_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import gossip_cost

    gossip_cost.main(["--quick"])
    output = capsys.readouterr().out
    assert "CPU per delivered message" in output
    assert "pubsub RPCs written per published message" in output
    assert "load average" in output

"""The wire fuzz benchmark stays runnable; it raises on any untyped error or accepted forgery."""

from __future__ import annotations

import pytest

from benchmarks import wire_fuzz


def test_wire_fuzz_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    results = wire_fuzz.main(["--quick"])
    assert results["frames"] == 5_000
    assert "fuzzed frames checked" in capsys.readouterr().out

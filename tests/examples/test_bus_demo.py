from __future__ import annotations

import pytest

from examples import bus_demo as demo


async def test_demo_picks_the_cheapest_solver(capsys: pytest.CaptureFixture[str]) -> None:
    await demo.main()
    output = capsys.readouterr().out
    assert output.count("offer ") == 3
    assert "chosen  solver-0" in output

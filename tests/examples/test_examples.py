"""Every example runs (under trio's MockClock, so simulated seconds are free)."""

from __future__ import annotations

import pytest
import trio


async def test_ping_pong(
    autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples import ping_pong

    await ping_pong.main(seconds=3.5)
    assert capsys.readouterr().out.splitlines() == [
        "pinger: pong 1",
        "pinger: pong 2",
        "pinger: pong 3",
    ]


async def test_quotes(autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]) -> None:
    from examples import quotes

    runtime = await quotes.main(seconds=3.5)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("trader: AXL = ") for line in lines)
    assert all(line.endswith(" from quoteservice") for line in lines)
    prices = [float(line.split()[3]) for line in lines]
    assert len(set(prices)) == 3  # the price moved every second
    assert runtime["trader"].state["last_price"] == prices[-1]
    assert runtime["directory"].counters()["directory.queries"] == 3

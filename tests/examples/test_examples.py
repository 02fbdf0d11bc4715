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

"""Every example runs (under trio's MockClock, so simulated seconds are free)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

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


def test_ping_pong_over_libp2p_in_two_processes() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "examples.ping_pong_libp2p"]
    ponger = subprocess.Popen(
        [*command, "ponger"], stdout=subprocess.PIPE, text=True, env=env, cwd=root
    )
    assert ponger.stdout is not None
    watchdog = threading.Timer(90, ponger.kill)  # a hung child ends the test, not the suite
    watchdog.daemon = True
    watchdog.start()
    try:
        first = ponger.stdout.readline().strip()
        assert first.startswith("ponger listening on /ip4/127.0.0.1/tcp/")
        address = first.rsplit(" ", 1)[1]
        pinger = subprocess.run(
            [*command, "pinger", address, "--count", "3"],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=60,
            check=False,
        )
        assert pinger.returncode == 0, pinger.stderr[-2000:]
        assert pinger.stdout.splitlines() == ["pinger: pong 1", "pinger: pong 2", "pinger: pong 3"]
        ponger.send_signal(signal.SIGINT)
        assert ponger.wait(timeout=30) == 0
    finally:
        ponger.kill()
        ponger.wait()

"""SIGTERM at any moment of ``axl``'s start-up ends the process cleanly (exit 0, no traceback):
while it waits for the chain (before the event loop runs) and while an agent starts."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import trio

from agents import Agent

from .conftest import Axl, reap, spawn


class SlowStart(Agent):
    """An agent whose start never ends: it says so, then waits."""

    async def on_start(self) -> None:
        print("starting", flush=True)
        await trio.sleep_forever()


def test_sigterm_while_an_agent_starts(tmp_path: Path) -> None:
    process = spawn(
        "agent", "tests.agents.cli.test_signals:SlowStart", "--data-dir", str(tmp_path),
        "--listen", "/ip4/127.0.0.1/tcp/0",
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "starting"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()
    finally:
        reap(process)


def test_sigterm_while_waiting_for_the_chain(axl: Axl, tmp_path: Path) -> None:
    """A JSON-RPC node that accepts the connection and never answers: the process is in its
    synchronous start-up (keys loaded, chain connecting) when the signal comes."""
    code, _, _ = axl("keys", "new", "--data-dir", str(tmp_path / "solver"))
    assert code == 0
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        process = spawn(
            "run", "solver", "--data-dir", str(tmp_path / "solver"), "--rpc",
            f"http://127.0.0.1:{port}", "--address-book", str(tmp_path / "book.json"),
        )  # fmt: skip
        try:
            silent.settimeout(60)
            connection, _ = silent.accept()  # it is asking the chain now
            with connection:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=60) == 0
            assert process.stderr is not None
            err = process.stderr.read()
            assert "Traceback" not in err, err
        finally:
            reap(process)

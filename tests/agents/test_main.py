"""``python -m agents module:Class``: one agent per OS process over libp2p, with persisted
identity and state across a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agents import State
from agents.cli import CliError
from agents.cli._checks import load_agent_class
from examples.ping_pong import Ponger

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "agents", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    watchdog = threading.Timer(90, process.kill)  # a hung child ends the test, not the suite
    watchdog.daemon = True
    watchdog.start()
    return process


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def test_load_agent_class() -> None:
    assert load_agent_class("examples.ping_pong:Ponger") is Ponger
    with pytest.raises(CliError, match="module:Class"):
        load_agent_class("examples.ping_pong")
    with pytest.raises(CliError, match=r"not an agents\.Agent"):
        load_agent_class("examples.ping_pong:Ping")


def test_two_processes_and_a_restart_that_resumes(tmp_path: Path) -> None:
    processes: list[subprocess.Popen[str]] = []
    try:
        ponger = start("examples.ping_pong:Ponger", "--data-dir", str(tmp_path))
        processes.append(ponger)
        assert ponger.stdout is not None
        header = ponger.stdout.readline().split()
        assert header[:2] == ["agent", "ponger"]
        address = ponger.stdout.readline().split()[1]
        assert address.endswith("/p2p/" + header[2])

        pinger_args = ["examples.ping_pong:Pinger", "--data-dir", str(tmp_path)]
        pinger_args += ["--bootstrap", address, "--peer", f"ponger={header[2]}"]
        pinger = start(*pinger_args)
        processes.append(pinger)
        assert pinger.stdout is not None
        pinger_id = pinger.stdout.readline().split()[2]
        lines = [pinger.stdout.readline().strip() for _ in range(3)]
        assert lines[1:] == ["pinger: pong 1", "pinger: pong 2"]
        stop(pinger)
        saved = State(tmp_path / "pinger" / "state.sqlite")["seq"]
        assert saved >= 2

        again = start(*pinger_args)
        processes.append(again)
        assert again.stdout is not None
        assert again.stdout.readline().split()[2] == pinger_id  # same identity
        again.stdout.readline()  # listening ...
        assert again.stdout.readline().strip() == f"pinger: pong {saved + 1}"  # resumed
        stop(again)
        stop(ponger)
    finally:
        for process in processes:
            process.kill()
            process.wait()

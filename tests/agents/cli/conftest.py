"""Helpers for the ``axl`` CLI tests: run ``main`` in-process (exit status + stderr), or the
real console entry point as a child process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents.cli import main

ROOT = Path(__file__).resolve().parents[3]

Axl = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``axl`` configures logging for its process; undo it after each in-process run."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name in ("agents", "axl"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture
def axl(capsys: pytest.CaptureFixture[str]) -> Axl:
    """``axl(*args)`` runs the CLI in this process; returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out, err = capsys.readouterr()
        code = info.value.code
        return (code if isinstance(code, int) else 1), out, err

    return run


def spawn(*args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    """``python -m agents *args`` as a child process (stdout and stderr piped, text)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agents", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
    )
    watchdog = threading.Timer(120, process.kill)  # a hung child ends the test, not the suite
    watchdog.daemon = True
    watchdog.start()
    return process


def one_line(err: str) -> str:
    """The single ``axl: ...`` line of ``err``; fails when there is more (a traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("axl: "), err
    assert "Traceback" not in err
    return lines[0]


def reap(process: subprocess.Popen[str]) -> None:
    """Kill ``process`` if it still runs, wait for it and close its pipes."""
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()

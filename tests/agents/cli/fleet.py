"""A fleet of ``axl`` OS processes for the multi-process tests: each one's output goes to
files (a full pipe cannot block it), start-up lines are read from there, and every process is
killed at the end."""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agents.cli import main
from agents.cli._status import fetch_status

from .conftest import ROOT


class Fleet:
    """OS processes of ``python -m agents``, output to files (a full pipe cannot block one)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.runs: Counter[str] = Counter()

    def cli(self, *args: str) -> str:
        """A short ``axl`` command (keys, chain) run in this process; its stdout."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
            main(list(args))
        assert info.value.code == 0, out.getvalue()
        return out.getvalue()

    def spawn(self, name: str, *args: str, prefix: Sequence[str] = ()) -> None:
        """Start ``python -m agents *args`` as ``name`` (``prefix``: e.g. ``ip netns exec``)."""
        self.runs[name] += 1
        out, err = self._files(name)
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.procs[name] = subprocess.Popen(
                [*prefix, sys.executable, "-m", "agents", *args],
                stdout=stdout, stderr=stderr, cwd=ROOT,
                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            )  # fmt: skip

    def _files(self, name: str) -> tuple[Path, Path]:
        run = self.runs[name]
        return self.folder / f"{name}.{run}.out", self.folder / f"{name}.{run}.err"

    def header(self, name: str, timeout: float = 240) -> dict[str, str]:
        """The start-up lines of ``name`` once printed (processes start in parallel)."""
        out, err = self._files(name)
        deadline = time.monotonic() + timeout
        while True:
            lines = dict(line.split(" ", 1) for line in out.read_text().splitlines() if " " in line)
            if "status" in lines:
                return lines
            code = self.procs[name].poll()
            assert code is None, f"{name} exited {code}: {err.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.2)

    def start(self, name: str, *args: str, prefix: Sequence[str] = ()) -> dict[str, str]:
        self.spawn(name, *args, prefix=prefix)
        return self.header(name)

    def status(self, name: str, url: str) -> dict[str, Any]:
        return fetch_status(url)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        process = self.procs[name]
        process.send_signal(sig)
        return process.wait(timeout=60)

    def stop(self, names: Sequence[str]) -> dict[str, str]:
        """SIGTERM to all of ``names`` at once; the stderr tail of each that did not exit 0."""
        for name in names:
            self.procs[name].send_signal(signal.SIGTERM)
        failed = {}
        for name in names:
            code = self.procs[name].wait(timeout=60)
            if code != 0:
                failed[name] = f"exit {code}: " + self._files(name)[1].read_text()[-3000:]
        return failed

    def close(self) -> None:
        for process in self.procs.values():
            process.kill()
            process.wait()

"""The parent's side of ``benchmarks.swarm_processes``: starting, killing, measuring and
stopping the node processes, and waiting for the swarm's membership."""

from __future__ import annotations

import compileall
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from axl import Identity

from ._swarm_node import LOG_DIR_ENV, OFF_ENV, PROFILE_ENV

MODULE = "benchmarks._swarm_node"
"""Where the node's agent class lives (``python -m agents MODULE:SwarmNode``)."""
PACKAGES = ("axl", "agents", "benchmarks", "compute", "coordination")
"""The project's packages: a node imports from them (:func:`fill_bytecode_cache`)."""


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    started: float
    killed: float | None = None
    cpu_marks: dict[str, float] = field(default_factory=dict)
    switch_marks: dict[str, tuple[int, int]] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> tuple[int, int]:
    """Voluntary (the process blocked: its event loop waited) and involuntary (preempted)
    context switches of a process's main thread so far, from /proc."""
    counts = {"voluntary_ctxt_switches": 0, "nonvoluntary_ctxt_switches": 0}
    try:
        for text in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = text.partition(":")
            if key in counts:
                counts[key] = int(value)
    except OSError:
        pass
    return counts["voluntary_ctxt_switches"], counts["nonvoluntary_ctxt_switches"]


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (all processes, /proc/stat):
    what the swarm did not use of it over a window is what else ran, which the swarm's
    figures depend on (starved processes batch more work per wake-up)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields]
    idle = ticks[3] + ticks[4]  # idle, iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    try:
        for text in Path(f"/proc/{pid}/status").read_text().splitlines():
            if text.startswith("VmRSS:"):
                return int(text.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def fill_bytecode_cache(root: Path | None = None) -> bool:
    """Compile the project's modules into their ``__pycache__`` where it is missing or stale
    (False if one fails to compile). Python writes that cache on a module's first import, so
    every start of an agent after the first finds it, except where ``PYTHONDONTWRITEBYTECODE``
    is set (as in this machine's sandbox): then each of the 40 processes compiled AXL's
    modules again at start-up (≈ 0.15 to 0.2 s of CPU each, about 4 s of the start-up storm
    on two cores). Compiling once, in the parent, measures the swarm as an operator's machine
    runs it."""
    base = Path(__file__).resolve().parent.parent if root is None else root
    folders = [base / package for package in PACKAGES if (base / package).is_dir()]
    return all([bool(compileall.compile_dir(folder, quiet=2)) for folder in folders])


class Swarm:
    def __init__(
        self, root: Path, bootstrap_port: int, profile: str | None = None, off: str = ""
    ) -> None:
        self.profile = profile
        self.off = off
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir()
        self.port = bootstrap_port
        self.bootstrap = ""
        self.procs: dict[str, Proc] = {}
        self.retired: list[Proc] = []
        self.exit_seconds: dict[str, float] = {}  # SIGTERM to exit, per node (terminate)

    def start(self, name: str) -> Proc:
        command = [sys.executable, "-m", "agents", f"{MODULE}:SwarmNode", "--name", name]
        command += ["--data-dir", str(self.root / "data")]
        command += ["--log-level", "WARNING"]
        if name == "n0":
            command += ["--listen", f"/ip4/127.0.0.1/tcp/{self.port}"]
        else:
            command += ["--bootstrap", self.bootstrap]
        env = {**os.environ, LOG_DIR_ENV: str(self.logs), "PYTHONUNBUFFERED": "1"}
        if self.off:
            env[OFF_ENV] = self.off
        if name == self.profile:
            env[PROFILE_ENV] = str(self.logs / f"{name}.prof")
        err = (self.logs / f"{name}.stderr").open("ab")
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=Path.cwd()
        )
        err.close()
        proc = Proc(name, process, time.time())
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.process.send_signal(signal.SIGKILL)
        proc.process.wait()
        proc.killed = time.time()
        self.retired.append(proc)

    def mark_cpu(self, label: str) -> None:
        for proc in self.procs.values():
            proc.cpu_marks[label] = cpu_seconds(proc.process.pid)
            proc.switch_marks[label] = context_switches(proc.process.pid)

    def terminate(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every node; their exit codes (None: killed after ``timeout``). How long
        each took to exit, polled every 20 ms, goes to ``exit_seconds``."""
        sent = time.time()
        for proc in self.procs.values():
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        deadline = sent + timeout
        codes: dict[str, int | None] = {}
        running = dict(self.procs)
        while running and time.time() < deadline:
            for name, proc in list(running.items()):
                code = proc.process.poll()
                if code is not None:
                    codes[name] = code
                    self.exit_seconds[name] = time.time() - sent
                    del running[name]
            time.sleep(0.02)
        for name, proc in running.items():
            codes[name] = None
            proc.process.kill()
            proc.process.wait()
        return {name: codes[name] for name in self.procs}

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.process.poll() is None:
                proc.process.kill()
                proc.process.wait()


MESH_PEERS = 2
"""Topic peers a node must see before it counts as a member (GossipSub's D_low)."""


def wait_for_membership(swarm: Swarm, count: int, deadline: float) -> float | None:
    """Poll the logs until every live node's last sample knows an address for every other
    node and sees at least ``min(count - 1, MESH_PEERS)`` peers on the topic. (A node
    connects to ``target_peers`` others, not to all: past that, topic peers are its
    neighbours and the rest are reached through the mesh.) On time-out, prints which nodes
    fell short. Reads only each log's tail (the parent must not load the swarm it measures)."""
    need = min(count - 1, MESH_PEERS)
    latest: dict[str, tuple[float, int, int]] = {}
    while time.time() < deadline:
        time.sleep(1.0)
        latest = {}
        for path in swarm.logs.glob("*.jsonl"):
            name = path.name.rsplit("-", 1)[0]
            for text in _tail(path).splitlines():
                if '"ev":"m"' in text:
                    with suppress(ValueError):  # a line cut short
                        sample = json.loads(text)
                        if sample["t"] >= latest.get(name, (0.0, 0, 0))[0]:
                            latest[name] = (sample["t"], sample["topic"], sample["known"])
        live = set(swarm.procs)
        if live <= set(latest) and all(
            latest[n][1] >= need and latest[n][2] >= count - 1 for n in live
        ):
            return time.time()
    short = {
        name: latest.get(name, (0.0, 0, 0))[1:]
        for name in sorted(swarm.procs)
        if latest.get(name, (0.0, 0, 0))[1] < need or latest.get(name, (0.0, 0, 0))[2] < count - 1
    }
    print(f"  membership: {len(short)} nodes short (name: topic peers, known peers): {short}")
    return None


def _tail(path: Path, size: int = 32 * 1024) -> str:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode("utf-8", "replace")


def bootstrap_addr(data: Path, port: int, timeout: float = 60.0) -> str:
    """Node 0's dialable address: its identity file appears when the process starts."""
    key = data / "identity.key"
    deadline = time.time() + timeout
    while not key.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    peer = Identity.load(key).peer_id
    return f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer}"

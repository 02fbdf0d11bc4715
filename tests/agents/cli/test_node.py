"""``axl node`` and ``axl agent`` as OS processes: the status endpoint and ``axl status``,
Prometheus metrics, a graceful SIGTERM, JSON logs for every line (py-libp2p's included) and one
summary line for a bootstrap peer that does not answer."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from axl import Identity

from .conftest import Axl, reap, spawn


def read_header(process: subprocess.Popen[str]) -> dict[str, str]:
    """The start-up lines: agent, listening, status, metrics (until the last expected one)."""
    assert process.stdout is not None
    lines: dict[str, str] = {}
    while "status" not in lines:
        line = process.stdout.readline()
        assert line, f"exited early: {process.poll()}"
        key, _, value = line.strip().partition(" ")
        lines.setdefault(key, value)
    return lines


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    process.send_signal(sig)
    return process.wait(timeout=30)


def test_node_status_metrics_and_a_graceful_stop(axl: Axl, tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    processes: list[subprocess.Popen[str]] = []
    try:
        node = spawn(
            "node", "--data-dir", str(node_dir), "--listen", "/ip4/127.0.0.1/tcp/0",
            "--metrics-port", "0",
        )  # fmt: skip
        processes.append(node)
        header = read_header(node)
        assert header["agent"].startswith("directory ")
        node_id = header["agent"].split()[1]
        bootstrap = header["listening"]
        assert bootstrap.endswith("/p2p/" + node_id)
        assert node.stdout is not None
        metrics_url = node.stdout.readline().split()[1]
        assert (node_dir / "status.url").read_text().strip() == header["status"]

        ponger = spawn(
            "examples.ping_pong:Ponger", "--data-dir", str(tmp_path), "--bootstrap", bootstrap,
            "--status-port", "0",
        )  # fmt: skip
        processes.append(ponger)
        ponger_id = read_header(ponger)["agent"].split()[1]

        deadline = time.monotonic() + 30
        while True:
            code, out, _ = axl("status", "--data-dir", str(node_dir), "--json")
            assert code == 0
            data = json.loads(out)
            if ponger_id in data["peers"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert ponger_id in data["peers"]
        assert (data["role"], data["name"], data["peer_id"]) == ("node", "directory", node_id)
        assert data["status"] == "running"

        code, out, _ = axl("status", "--data-dir", str(node_dir))
        assert code == 0
        assert "1 connected" in out and node_id in out

        with urllib.request.urlopen(metrics_url, timeout=5) as answer:
            text = answer.read().decode()
        assert "axl_peers 1.0" in text
        assert 'axl_messages_total{kind="received"}' in text

        assert stop(ponger) == 0
        assert stop(node) == 0
        assert not (node_dir / "status.url").exists()
        code, _, err = axl("status", "--data-dir", str(node_dir))
        assert code == 1 and "no running node" in err
    finally:
        for process in processes:
            reap(process)


def test_unreachable_bootstrap_gives_a_summary_line_in_json(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nobody = Identity.from_seed(b"\2" * 32).peer_id
    process = spawn(
        "examples.ping_pong:Ponger", "--data-dir", str(tmp_path), "--json-logs",
        "--bootstrap", f"/ip4/127.0.0.1/tcp/{port}/p2p/{nobody}", "--bootstrap-grace", "2",
    )  # fmt: skip
    try:
        assert process.stderr is not None
        records = []
        while True:
            line = process.stderr.readline()
            assert line, "exited before the summary"
            records.append(json.loads(line))  # every line is JSON, py-libp2p's included
            if "no bootstrap peer reachable" in records[-1]["message"]:
                break
        summary = records[-1]
        assert summary["level"] == "WARNING"
        assert str(nobody) in summary["message"] and "still retrying" in summary["message"]
        retries = [r for r in records if "unreachable" in r["message"] and r is not summary]
        assert len(retries) <= 1  # the transport's retry line is condensed, not one per dial
        assert stop(process, signal.SIGINT) == 0
        tail = [json.loads(line) for line in process.stderr.read().splitlines() if line]
        assert all(isinstance(record, dict) for record in tail)
    finally:
        reap(process)


def test_kill_9_and_restart_keeps_the_identity_and_takes_the_lock(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    args = ("node", "--data-dir", str(node_dir), "--listen", "/ip4/127.0.0.1/tcp/0")
    first = spawn(*args)
    try:
        peer = read_header(first)["agent"].split()[1]
        second = spawn(*args)  # the same directory while the first runs: refused
        assert second.wait(timeout=60) == 1
        assert second.stderr is not None
        assert "is in use by another axl process" in second.stderr.read()
        reap(second)
        first.kill()  # SIGKILL: no clean-up ran, the lock file and status.url stay behind
        first.wait()
        assert (node_dir / "lock").exists()
        again = spawn(*args)
        try:
            assert read_header(again)["agent"].split()[1] == peer  # same identity
            assert stop(again) == 0
        finally:
            reap(again)
    finally:
        reap(first)

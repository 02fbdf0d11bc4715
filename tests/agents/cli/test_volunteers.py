"""The market as volunteer machines: ``axl node``, a referee, two verifiers, three solvers and
a submitter, each a separate OS process started through the CLI, on loopback against an anvil
node. One solver is SIGKILLed mid-job and restarted on its data directory. Every job ends
settled or refunded, nothing is paid twice, and token conservation holds — all read from the
chain's events alone; the restarted solver keeps its identity."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agents.cli import main
from agents.cli._status import fetch_status
from coordination import AddressBook, Chain, JobStatus, MarketLedger, anvil_node, find_anvil

from .conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_anvil() is None, reason="anvil not installed (npm ci)"),
    pytest.mark.skipif(
        importlib.util.find_spec("agents.market") is None, reason="no agents.market in this build"
    ),
    pytest.mark.skipif(
        os.environ.get("AXL_MULTIPROCESS") != "1",
        reason="8 OS processes importing torch need spare cores: AXL_MULTIPROCESS=1 runs it",
    ),
]

JOBS = int(os.environ.get("AXL_VOLUNTEER_JOBS", "6"))
DEADLINE = 180.0  # seconds for the whole market; the test fails (not hangs) past it
ANVIL_FIRST = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # deployer and funder


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

    def spawn(self, name: str, *args: str) -> None:
        self.runs[name] += 1
        out, err = self._files(name)
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "agents", *args],
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

    def start(self, name: str, *args: str) -> dict[str, str]:
        self.spawn(name, *args)
        return self.header(name)

    def status(self, name: str, url: str) -> dict[str, Any]:
        return fetch_status(url)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        process = self.procs[name]
        process.send_signal(sig)
        return process.wait(timeout=60)

    def close(self) -> None:
        for process in self.procs.values():
            process.kill()
            process.wait()


def test_volunteer_market_survives_a_killed_solver(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    names = ["referee", "submitter", "verifier0", "verifier1", "solver0", "solver1", "solver2"]
    try:
        with anvil_node() as url:
            _run_market(fleet, tmp_path, url, names)
    finally:
        fleet.close()


def _run_market(fleet: Fleet, tmp: Path, url: str, names: list[str]) -> None:
    accounts, peers = {}, {}
    for name in ["node", *names]:
        out = fleet.cli("keys", "new", "--data-dir", str(tmp / name))
        peers[name] = out.split("peer id ")[1].split()[0]
        accounts[name] = out.split("account ")[1].split()[0]
    book = tmp / "addressbook.json"
    fleet.cli(
        "chain", "deploy", "--rpc", url, "--out", str(book),
        "--param", "challenge_window=600", "--allocate", f"{ANVIL_FIRST}=100000",
    )  # fmt: skip
    for name in names:
        fleet.cli("chain", "fund", str(tmp / name), "--rpc", url, "--address-book", str(book),
                  "--eth", "5", "--tokens", "500")  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        node_port = probe.getsockname()[1]
    bootstrap = f"/ip4/127.0.0.1/tcp/{node_port}/p2p/{peers['node']}"
    (tmp / "fast.toml").write_text("[role]\npoll_interval = 0.2\n")
    (tmp / "solver.toml").write_text(
        "[role]\npoll_interval = 0.2\ncommit_interval = 0.2\nsettle_interval = 0.5\n"
        "offer_interval = 2.0\ncapacity = 2\n"
    )
    (tmp / "submitter.toml").write_text(
        f'[role]\npayment = "10"\nbid_window = 1.0\ncommit_timeout = 60\nmax_attempts = 3\n'
        f"poll_interval = 0.2\nsettle_grace = 2\nrepeat = {JOBS}\n"
        "[[role.jobs]]\nsteps = 4\nbatch_size = 4\ncheckpoint_interval = 1\n"
    )
    common = [
        "--rpc", url, "--address-book", str(book), "--listen", "/ip4/127.0.0.1/tcp/0",
        "--bootstrap", bootstrap,
    ]  # fmt: skip
    args: dict[str, list[str]] = {
        "referee": ["--config", str(tmp / "fast.toml")],
        "verifier0": ["--sampling", "1.0", "--peer", f"referee={peers['referee']}"],
        "verifier1": ["--sampling", "1.0", "--peer", f"referee={peers['referee']}"],
        "solver0": ["--config", str(tmp / "solver.toml")],
        "solver1": ["--config", str(tmp / "solver.toml")],
        "solver2": ["--config", str(tmp / "solver.toml")],
        "submitter": ["--config", str(tmp / "submitter.toml")],
    }
    fleet.spawn("node", "node", "--data-dir", str(tmp / "node"),
                "--listen", f"/ip4/127.0.0.1/tcp/{node_port}")  # fmt: skip
    for name in names:  # all at once: each imports torch, which is slow on a busy machine
        role = name.rstrip("0123456789")
        args[name] = ["run", role, "--data-dir", str(tmp / name), *args[name], *common]
        fleet.spawn(name, *args[name])
    urls = {}
    for name in ["node", *names]:
        lines = fleet.header(name)
        assert lines["agent"].split()[1] == peers[name]
        urls[name] = lines["status"]
    solver_args = args

    # SIGKILL the first solver seen holding a job, then restart it on its data directory.
    victim = None
    deadline = time.monotonic() + DEADLINE
    while victim is None:
        assert time.monotonic() < deadline, "no solver ever got a job"
        for name in ("solver0", "solver1", "solver2"):
            jobs = fleet.status(name, urls[name])["jobs"]
            if jobs.get("training", 0) + jobs.get("committed", 0) > 0:
                victim = name
                break
        time.sleep(0.1)
    assert fleet.kill(victim) == -signal.SIGKILL
    again = fleet.start(victim, *solver_args[victim])
    assert again["agent"].split()[1] == peers[victim]  # the same identity
    urls[victim] = again["status"]

    # Drive: when the submitter's jobs stop moving, move chain time on (deadlines, windows).
    chain = Chain.connect(url).with_address_book(AddressBook.load(book))
    last, still = None, 0.0
    while True:
        jobs = fleet.status("submitter", urls["submitter"])["jobs"]
        if sum(jobs.get(s, 0) for s in ("paid", "refunded")) == JOBS:
            break
        assert time.monotonic() < deadline, f"jobs not done: {jobs}"
        if jobs == last:
            still += 0.5
            if still >= 8:
                chain.advance_time(30)
                still = 0.0
        else:
            last, still = jobs, 0.0
        time.sleep(0.5)

    victim_status = fleet.status(victim, urls[victim])
    assert victim_status["peer_id"] == peers[victim]
    assert str(chain.peer_of(accounts[victim])) == peers[victim]

    # Everything from the chain's events alone.
    events = chain.events(chain.address_book.block_number)
    ledger = MarketLedger()
    ledger.extend(events)
    assert len(ledger.jobs) >= JOBS
    assert all(j.status in (JobStatus.SETTLED, JobStatus.REFUNDED) for j in ledger.jobs.values())
    ends = Counter(int(e["jobId"]) for e in events if e.name in ("JobSettled", "JobRefunded"))
    assert set(ends.values()) == {1}  # each escrow ended exactly once: nothing paid twice
    per_spec = Counter(j.spec_hash for j in ledger.jobs.values() if j.status is JobStatus.SETTLED)
    assert per_spec and max(per_spec.values()) == 1  # one piece of work is paid at most once
    assert len({j.spec_hash for j in ledger.jobs.values()}) == JOBS
    assert ledger.escrow_held == 0
    assert ledger.escrowed == ledger.paid + ledger.fees + ledger.refunded
    assert ledger.supply == chain.total_supply()
    assert chain.balance_of(chain.address_book.contracts["JobMarket"]) == 0

    summary = {name: fleet.status(name, u)["jobs"] for name, u in urls.items()}
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    for name in ["submitter", *names[2:], "referee", "node"]:
        assert fleet.kill(name, signal.SIGTERM) == 0, (tmp / f"{name}.1.err").read_text()[-3000:]

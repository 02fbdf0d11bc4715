"""The market as volunteer machines: ``axl node``, a referee, two verifiers, three solvers and
a submitter, each a separate OS process started through the CLI, on loopback against an anvil
node. One solver is SIGKILLed mid-job and restarted on its data directory. Every job ends
settled or refunded, nothing is paid twice, and token conservation holds — all read from the
chain's events alone; the restarted solver keeps its identity."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from coordination import AddressBook, Chain, JobStatus, MarketLedger, anvil_node, find_anvil

from .fleet import Fleet

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_anvil() is None, reason="anvil not installed (npm ci)"),
    pytest.mark.skipif(
        importlib.util.find_spec("agents.market") is None, reason="no agents.market in this build"
    ),
]

JOBS = int(os.environ.get("AXL_VOLUNTEER_JOBS", "3"))
DEADLINE = 240.0  # seconds for the whole market; the test fails (not hangs) past it
WINDOW = 600  # the challenge window (the contracts' minimum), in chain seconds
COMMIT_TIMEOUT = 120  # chain seconds a solver has to commit (anvil's clock is the wall's)
ANVIL_FIRST = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # deployer and funder


def _story(chain: Chain) -> str:
    """Each job's market events, for a failure message."""
    lines: dict[int, list[str]] = {}
    for event in chain.events(chain.address_book.block_number):
        if event.contract == "JobMarket" and "jobId" in event.args:
            lines.setdefault(int(event["jobId"]), []).append(event.name)
    return "\n".join(f"job {job}: {' '.join(names)}" for job, names in sorted(lines.items()))


def test_volunteer_market_survives_a_killed_solver(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    names = ["referee", "submitter", "verifier0", "verifier1", "solver0", "solver1", "solver2"]
    with anvil_node() as url:
        try:
            _run_market(fleet, tmp_path, url, names)
        finally:
            fleet.close()  # before the chain goes


def _run_market(fleet: Fleet, tmp: Path, url: str, names: list[str]) -> None:
    accounts, peers = {}, {}
    for name in ["node", *names]:
        out = fleet.cli("keys", "new", "--data-dir", str(tmp / name))
        peers[name] = out.split("peer id ")[1].split()[0]
        accounts[name] = out.split("account ")[1].split()[0]
    book = tmp / "addressbook.json"
    fleet.cli(
        "chain", "deploy", "--rpc", url, "--out", str(book),
        "--param", f"challenge_window={WINDOW}", "--allocate", f"{ANVIL_FIRST}=100000",
    )  # fmt: skip
    for name in names:
        fleet.cli("chain", "fund", str(tmp / name), "--rpc", url, "--address-book", str(book),
                  "--eth", "5", "--tokens", "1000")  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        node_port = probe.getsockname()[1]
    bootstrap = f"/ip4/127.0.0.1/tcp/{node_port}/p2p/{peers['node']}"
    (tmp / "fast.toml").write_text("[role]\npoll_interval = 0.2\n")
    (tmp / "solver.toml").write_text(
        "[role]\npoll_interval = 0.2\ncommit_interval = 0.2\nsettle_interval = 0.5\n"
        "offer_interval = 2.0\ncapacity = 1\n"
    )
    (tmp / "submitter.toml").write_text(
        f'[role]\npayment = "10"\nbid_window = 1.0\ncommit_timeout = {COMMIT_TIMEOUT}\n'
        "max_attempts = 3\n"
        f"poll_interval = 0.2\nsettle_grace = 2\nrepeat = {JOBS}\n"
        "[[role.jobs]]\nsteps = 4\nbatch_size = 4\ncheckpoint_interval = 1\n"
    )
    common = [
        "--rpc", url, "--address-book", str(book), "--listen", "/ip4/127.0.0.1/tcp/0",
        "--bootstrap", bootstrap, "--log-level", "DEBUG",
    ]  # fmt: skip
    args: dict[str, list[str]] = {
        "referee": ["--config", str(tmp / "fast.toml")],
        "verifier0": [
            "--sampling",
            "1.0",
            "--peer",
            f"referee={peers['referee']}",
            "--stake",
            str(100 * (JOBS + 1)),
        ],  # one lock per attested job
        "verifier1": [
            "--sampling",
            "1.0",
            "--peer",
            f"referee={peers['referee']}",
            "--stake",
            str(100 * (JOBS + 1)),
        ],
        "solver0": ["--config", str(tmp / "solver.toml"), "--stake", "200"],
        "solver1": ["--config", str(tmp / "solver.toml"), "--stake", "200"],
        "solver2": ["--config", str(tmp / "solver.toml"), "--stake", "200"],
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

    # Drive chain time (anvil's clock is the wall's): once the submitter's jobs stop moving,
    # close the challenge windows when every live job is committed, else pass the commit
    # deadline (a job stuck with a solver is refunded and posted again).
    chain = Chain.connect(url).with_address_book(AddressBook.load(book))
    last: dict[str, int] | None = None
    since = time.monotonic()
    while True:
        jobs = fleet.status("submitter", urls["submitter"])["jobs"]
        if sum(jobs.get(s, 0) for s in ("paid", "refunded")) == JOBS:
            break
        assert time.monotonic() < deadline, f"jobs not done: {jobs}\n{_story(chain)}"
        if jobs != last:
            last, since = jobs, time.monotonic()
        live = {k for k, v in jobs.items() if v and k not in ("paid", "refunded")}
        if live == {"committed"} and time.monotonic() - since > 3:
            chain.advance_time(WINDOW + 5)
            since = time.monotonic()
        elif time.monotonic() - since > 15:  # a job held by no live solver
            chain.advance_time(COMMIT_TIMEOUT + 5)
            since = time.monotonic()
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
    assert ledger.escrowed == ledger.paid + ledger.fees + ledger.verifier_fees + ledger.refunded
    assert ledger.supply == chain.total_supply()
    assert chain.balance_of(chain.address_book.contracts["JobMarket"]) == 0

    summary = {name: fleet.status(name, u)["jobs"] for name, u in urls.items()}
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    assert fleet.stop(["node", *names]) == {}  # every process exits 0 on SIGTERM

"""A network partition made with Linux network namespaces (``ip netns``, a veth pair): a
verifier runs in its own namespace, is cut off from the network and the chain while a job is
posted and committed, and after the link is healed it rejoins, checks the next job and
catches up on the one it missed (asking its solver) — read from the chain's events
(``Attested`` by its account). Needs root and ``ip``; skipped with the
reason otherwise. The market runs on the host side of the veth, anvil included."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordination import AddressBook, Chain, anvil_node, find_anvil

from .fleet import Fleet

ANVIL_FIRST = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
WINDOW = 600  # chain seconds: the contracts' minimum challenge window
DEADLINE = 150.0
CUT = 15.0  # seconds the verifier stays cut off, at least


def _netns_problem() -> str | None:
    """Why this machine cannot make network namespaces (None: it can)."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"axlprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_anvil() is None, reason="anvil not installed (npm ci)"),
    pytest.mark.skipif(
        importlib.util.find_spec("agents.market") is None, reason="no agents.market in this build"
    ),
]


@dataclass(frozen=True)
class Link:
    """A namespace joined to the host by a veth pair: ``host_ip`` on the host side,
    ``ns_ip`` inside; :meth:`cut` and :meth:`heal` take the host side down and up."""

    ns: str
    host_dev: str
    host_ip: str
    ns_ip: str

    def cut(self) -> None:
        _ip("link", "set", self.host_dev, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_dev, "up")

    @property
    def exec(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def link() -> Iterator[Link]:
    problem = _netns_problem()
    if problem is not None:
        pytest.skip(problem)
    n = os.getpid() % 200 + 20
    ns, host_dev, ns_dev = f"axlpart{n}", f"axlh{n}", f"axln{n}"
    host_ip, ns_ip = f"10.231.{n}.1", f"10.231.{n}.2"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # a leftover
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_dev, "type", "veth", "peer", "name", ns_dev)
        _ip("link", "set", ns_dev, "netns", ns)
        _ip("addr", "add", f"{host_ip}/24", "dev", host_dev)
        _ip("link", "set", host_dev, "up")
        for cmd in (
            ["addr", "add", f"{ns_ip}/24", "dev", ns_dev],
            ["link", "set", ns_dev, "up"],
            ["link", "set", "lo", "up"],
        ):
            _ip("netns", "exec", ns, "ip", *cmd)
        yield Link(ns, host_dev, host_ip, ns_ip)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # the veth goes too
        subprocess.run(["ip", "link", "del", host_dev], capture_output=True)


def test_a_verifier_cut_off_and_healed_catches_up(link: Link, tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    with anvil_node(host=link.host_ip) as url:
        try:
            _run(fleet, link, tmp_path, url)
        finally:
            fleet.close()


def _run(fleet: Fleet, link: Link, tmp: Path, url: str) -> None:
    names = ["node", "solver", "verifier", "before", "after"]  # two submitters
    peers, accounts = {}, {}
    for name in names:
        out = fleet.cli("keys", "new", "--data-dir", str(tmp / name))
        peers[name] = out.split("peer id ")[1].split()[0]
        accounts[name] = out.split("account ")[1].split()[0]
    book = tmp / "addressbook.json"
    fleet.cli(
        "chain", "deploy", "--rpc", url, "--out", str(book),
        "--param", f"challenge_window={WINDOW}", "--allocate", f"{ANVIL_FIRST}=100000",
    )  # fmt: skip
    for name in names[1:]:
        fleet.cli("chain", "fund", str(tmp / name), "--rpc", url, "--address-book", str(book),
                  "--eth", "5", "--tokens", "1000")  # fmt: skip
    (tmp / "solver.toml").write_text(
        "[role]\npoll_interval = 0.2\ncommit_interval = 0.2\noffer_interval = 2.0\n"
    )
    for name, seed in (("before", 0), ("after", 100)):
        (tmp / f"{name}.toml").write_text(
            '[role]\npayment = "10"\nbid_window = 1.0\npoll_interval = 0.2\nsettle_grace = 2\n'
            f"[[role.jobs]]\nsteps = 4\nbatch_size = 4\ncheckpoint_interval = 1\nseed = {seed}\n"
        )
    (tmp / "verifier.toml").write_text(f'[role]\nsampling = 1.0\n[http]\nhost = "{link.ns_ip}"\n')
    node = f"/ip4/{link.host_ip}/tcp/{_free_port(link.host_ip)}"
    bootstrap = f"{node}/p2p/{peers['node']}"
    chain_args = ["--rpc", url, "--address-book", str(book), "--log-level", "DEBUG"]
    here = ["--listen", f"/ip4/{link.host_ip}/tcp/0", "--bootstrap", bootstrap, *chain_args]
    fleet.spawn("node", "node", "--data-dir", str(tmp / "node"), "--listen", node)
    fleet.spawn("solver", "run", "solver", "--data-dir", str(tmp / "solver"),
                "--config", str(tmp / "solver.toml"), "--stake", "300", *here)  # fmt: skip
    fleet.spawn(
        "verifier", "run", "verifier", "--data-dir", str(tmp / "verifier"),
        "--config", str(tmp / "verifier.toml"), "--stake", "300",
        "--listen", f"/ip4/{link.ns_ip}/tcp/0", "--bootstrap", bootstrap, *chain_args,
        prefix=link.exec,
    )  # fmt: skip
    urls = {name: fleet.header(name)["status"] for name in ("node", "solver", "verifier")}
    deadline = time.monotonic() + DEADLINE
    _until(lambda: fleet.status("verifier", urls["verifier"])["peers"], deadline, "no peers")
    chain = Chain.connect(url).with_address_book(AddressBook.load(book))

    link.cut()  # the verifier loses the network and the chain
    healed = time.monotonic() + CUT
    try:
        urls["before"] = fleet.start("before", "run", "submitter", "--data-dir",
                                     str(tmp / "before"), "--config", str(tmp / "before.toml"),
                                     *here)["status"]  # fmt: skip
        _until(lambda: _jobs(fleet, urls["before"]) == {"committed": 1}, deadline, "no commit")
        time.sleep(max(0.0, healed - time.monotonic()))
    finally:
        link.heal()
    _until(lambda: fleet.status("verifier", urls["verifier"])["peers"], deadline, "not rejoined")
    urls["after"] = fleet.start("after", "run", "submitter", "--data-dir", str(tmp / "after"),
                                "--config", str(tmp / "after.toml"), *here)["status"]  # fmt: skip
    verifier = accounts["verifier"].lower()

    def attested() -> set[int]:
        return {
            int(e["jobId"])
            for e in chain.events(chain.address_book.block_number)
            if e.name == "Attested" and str(e["verifier"]).lower() == verifier
        }

    _until(lambda: _jobs(fleet, urls["after"]) == {"committed": 1}, deadline, "no commit after")
    after_job = _job_ids(chain, accounts["after"])
    _until(lambda: after_job <= attested(), deadline, "the healed verifier did not attest")
    # the job committed while it was cut off: it asks the solver and checks it too
    missed = _job_ids(chain, accounts["before"])
    _until(lambda: missed <= attested(), deadline, "the missed job was not caught up")
    assert fleet.status("verifier", urls["verifier"])["jobs"].get("caught_up", 0) >= 1
    chain.advance_time(WINDOW + 5)  # both jobs settle
    for name in ("before", "after"):
        _until(lambda n=name: _jobs(fleet, urls[n]) == {"paid": 1}, deadline, f"{name} unpaid")
    status = fleet.status("verifier", urls["verifier"])
    assert status["peer_id"] == peers["verifier"]
    assert fleet.stop(["after", "before", "verifier", "solver", "node"]) == {}


def _jobs(fleet: Fleet, url: str) -> dict[str, int]:
    return {k: v for k, v in fleet.status("", url)["jobs"].items() if v}


def _job_ids(chain: Chain, account: str) -> set[int]:
    return {
        int(e["firstJobId"]) + i
        for e in chain.events(chain.address_book.block_number)
        if e.name == "JobsPosted" and str(e["submitter"]).lower() == account.lower()
        for i in range(len(e["specHashes"]))
    }


def _until(check: object, deadline: float, what: str) -> None:
    assert callable(check)
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])

"""``axl swarm simulate --processes N``: the scenario's market on this machine's real network
stack instead of the memory network — an anvil node started here, a bootstrap node and ``N``
worker OS processes, each hosting a share of the agents (the library roles of
:mod:`agents.market`) over libp2p, one host per agent, like ``axl run`` does for one.

Time is the wall clock: ``duration`` is seconds of job arrivals; chain time runs with it, and
to close the challenge and dispute windows the coordinator moves anvil's clock on during the
drain (in steps of the challenge window, at most ``drain`` chain seconds). The report has the
same files and format as a virtual-time run, but it is not byte-identical from one run to
the next (scheduling, the network and the wall clock decide who bids first).
Adversaries: ``cheats`` (by kind), ``vanishing`` solvers and ``false_accusers``; lazy and
colluding agents, spammers, link profiles and timed partitions are memory-network features.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._errors import InvalidScenario
from ._metrics import STATES, Sample, latency_stats, token_flows
from ._runner import Report
from ._scenario import Scenario

TOKEN = 10**18
ALLOCATION = 10_000 * TOKEN  # tokens each agent's account gets at deployment
READY_TIMEOUT = 300.0  # seconds for every worker to start (each imports torch)

Observer = Callable[[Sample, Scenario], None]


@dataclass(frozen=True)
class Member:
    """One agent of the plan: its runtime name, role, behaviour and chain key (hex)."""

    name: str
    role: str
    behaviour: str
    key: str

    @property
    def honest(self) -> bool:
        return self.behaviour == "honest"


def check(scenario: Scenario, processes: int) -> None:
    """Raise :class:`InvalidScenario` for what a multi-process run cannot do."""
    if processes < 1:
        raise InvalidScenario("--processes: at least 1")
    adv = scenario.adversaries
    unsupported = {
        "adversaries.lazy": adv.lazy,
        "adversaries.colluding_pairs": adv.colluding_pairs,
        "roles.spammers": scenario.roles.spammers,
        "network.partitions": len(scenario.network.partitions),
    }
    for key, value in unsupported.items():
        if value:
            raise InvalidScenario(f"{key}: not supported with --processes (set it to 0)")


def plan(scenario: Scenario) -> list[Member]:
    """Every agent, named and keyed from the seed: submitters, solvers (cheats by kind, then
    vanishing, then honest), verifiers (false accusers first) and one referee."""
    roles, adv = scenario.roles, scenario.adversaries
    behaviours: dict[str, list[str]] = {
        "submitter": ["honest"] * roles.submitters,
        "solver": [f"cheat:{kind}" for kind, n in sorted(adv.cheats.items()) for _ in range(n)],
        "verifier": ["false_accuser"] * adv.false_accusers,
        "referee": ["honest"],
    }
    behaviours["solver"] += ["vanishing"] * adv.vanishing
    behaviours["solver"] += ["honest"] * (roles.solvers - len(behaviours["solver"]))
    behaviours["verifier"] += ["honest"] * (roles.verifiers - adv.false_accusers)
    members = []
    for role, kinds in behaviours.items():
        for index, behaviour in enumerate(kinds):
            name = "referee" if role == "referee" else f"{role}{index}"
            digest = hashlib.sha256(f"axl-processes/{scenario.seed}/{name}".encode()).digest()
            members.append(Member(name, role, behaviour, "0x" + digest.hex()))
    return members


def simulate_processes(
    scenario: Scenario,
    processes: int,
    *,
    out_dir: str | Path | None = None,
    observer: Observer | None = None,
) -> Report:
    """Run ``scenario`` over ``processes`` worker processes (see the module doc) and return
    its :class:`Report`; with ``out_dir``, also write the report directory. Blocking."""
    from coordination import ChainUnavailable, anvil_node

    check(scenario, processes)
    members = plan(scenario)
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="axl-swarm-") as folder:
        try:
            with anvil_node() as url:
                report = _run(scenario, processes, members, url, Path(folder), observer)
        except ChainUnavailable as exc:
            raise InvalidScenario(f"--processes needs anvil (npm ci): {exc}") from None
    report.wall_seconds = time.perf_counter() - wall
    if out_dir is not None:
        report.write(out_dir)
    return report


def _run(
    scenario: Scenario,
    processes: int,
    members: list[Member],
    url: str,
    folder: Path,
    observer: Observer | None,
) -> Report:
    from eth_account import Account

    from coordination import Chain, DeployParams

    wall0 = time.perf_counter()
    funder = Chain.connect(url)  # anvil's first account deploys and pays the gas money
    market = scenario.market
    params = DeployParams(
        challenge_window=market.challenge_window,
        dispute_window=market.dispute_window,
        fee_bps=market.fee_bps,
    )
    addresses = {m.name: Account.from_key(m.key).address for m in members}
    chain = funder.deploy(params, dict.fromkeys(addresses.values(), ALLOCATION))
    for address in addresses.values():
        chain.fund(address, 10 * TOKEN)
    book = folder / "addressbook.json"
    chain.address_book.save(book)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bootstrap = _start_node(folder, procs)
        shares = [members[i::processes] for i in range(processes)]
        for index, share in enumerate(shares):
            if share:
                job = {
                    "rpc": url,
                    "book": str(book),
                    "bootstrap": bootstrap,
                    "scenario": scenario.model_dump(mode="json"),
                    "members": [asdict(m) for m in share],
                    "referee": _peer_of("referee", scenario.seed),
                    "start": time.time(),
                }
                path = folder / f"worker{index}.json"
                path.write_text(json.dumps(job))
                procs.append(
                    _spawn(
                        folder, f"worker{index}", ["-m", "agents.sim._process_worker", str(path)]
                    )
                )
        _wait_ready(folder, [f"worker{i}" for i, s in enumerate(shares) if s], procs)
        timings = {"setup_s": time.perf_counter() - wall0}
        watcher = _Watcher(chain, addresses, members)
        samples, t0 = [], time.monotonic()
        while (t := time.monotonic() - t0) < scenario.duration:
            time.sleep(min(scenario.sample_interval, max(0.0, scenario.duration - t)))
            samples.append(watcher.sample(time.monotonic() - t0))
            if observer is not None:
                observer(samples[-1], scenario)
        advanced = 0
        while advanced < scenario.drain and watcher.open_jobs(time.monotonic() - t0):
            step = min(market.challenge_window + 1, int(scenario.drain - advanced) or 1)
            time.sleep(min(3.0, scenario.sample_interval))  # let the roles react first
            chain.advance_time(step)
            advanced += step
            samples.append(watcher.sample(time.monotonic() - t0))
            if observer is not None:
                observer(samples[-1], scenario)
        time.sleep(2.0)  # the last settlements
        samples.append(watcher.sample(time.monotonic() - t0))
        timings["run_s"] = time.perf_counter() - wall0 - timings["setup_s"]
    finally:
        _stop(procs)
    summary = watcher.summary(scenario, processes, _counters(folder))
    timings["total_s"] = time.perf_counter() - wall0
    return Report(scenario, summary, samples, watcher.latencies(), timings=timings)


def _peer_of(name: str, seed: int) -> str:
    from .._wiring import identity_for

    return str(identity_for(name, None, f"axl-sim-{seed}".encode()).peer_id)


def _spawn(folder: Path, name: str, args: list[str]) -> subprocess.Popen[bytes]:
    with (folder / f"{name}.out").open("wb") as out, (folder / f"{name}.err").open("wb") as err:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=err)


def _start_node(folder: Path, procs: list[subprocess.Popen[bytes]]) -> str:
    """An ``axl node`` on a free loopback port; its multiaddr with the peer id."""
    args = ["-m", "agents", "node", "--data-dir", str(folder / "node")]
    args += ["--listen", "/ip4/127.0.0.1/tcp/0", "--no-directory"]
    procs.append(_spawn(folder, "node", args))
    lines = _wait_ready(folder, ["node"], procs)
    return lines["node"]["listening"]


def _wait_ready(
    folder: Path, names: list[str], procs: list[subprocess.Popen[bytes]]
) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + READY_TIMEOUT
    found: dict[str, dict[str, str]] = {}
    while len(found) < len(names):
        for name in names:
            text = (folder / f"{name}.out").read_text()
            lines = dict((line + " ").split(" ", 1) for line in text.splitlines())
            if "status" in lines or "ready" in lines:
                found[name] = lines
        for process in procs:
            if process.poll() is not None:
                errors = "".join((folder / f"{n}.err").read_text()[-600:] for n in names)
                raise InvalidScenario(f"a worker process exited {process.returncode}: {errors}")
        if time.monotonic() > deadline:
            raise InvalidScenario(f"workers did not start within {READY_TIMEOUT:.0f} s")
        time.sleep(0.2)
    return found


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(procs):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(procs):
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _counters(folder: Path) -> Counter[str]:
    totals: Counter[str] = Counter()
    for path in folder.glob("worker*.counters.json"):
        totals.update(json.loads(path.read_text()))
    return totals


class _Watcher:
    """The run as the chain tells it: jobs by state, balances and stake per role, burned
    tokens and disputes over time; at the end, the summary."""

    def __init__(self, chain: Any, addresses: dict[str, str], members: list[Member]) -> None:
        from coordination import MarketLedger

        self.chain = chain
        self.ledger = MarketLedger()
        self.cursor = chain.event_cursor(chain.address_book.block_number)
        self.member_of = {addresses[m.name].lower(): m for m in members}
        self.posted_at: dict[int, float] = {}
        self.closed_at: dict[int, float] = {}
        self.disputed: set[int] = set()
        self.slashed: Counter[str] = Counter()
        self.events = 0

    def _poll(self, now: float) -> None:
        for event in self.cursor.poll():
            self.events += 1
            self.ledger.apply(event)
            if event.name == "JobsPosted":
                for i in range(len(event["specHashes"])):
                    self.posted_at[int(event["firstJobId"]) + i] = now
            elif event.name == "Challenged":
                self.disputed.add(int(event["jobId"]))
            elif event.name == "Slashed":
                self.slashed[str(event["account"]).lower()] += int(event["amount"])
        for job in self.ledger.jobs.values():
            if job.status.name in ("SETTLED", "REFUNDED", "REJECTED"):
                self.closed_at.setdefault(job.job_id, now)

    def open_jobs(self, now: float) -> int:
        self._poll(now)
        return sum(1 for j in self.ledger.jobs.values() if j.job_id not in self.closed_at)

    def sample(self, now: float) -> Sample:
        self._poll(now)
        jobs = Counter(job.status.name.lower() for job in self.ledger.jobs.values())
        balance: Counter[str] = Counter()
        stake: Counter[str] = Counter()
        for address, member in self.member_of.items():
            balance[member.role] += self.chain.balance_of(address)
        for address, member in self.member_of.items():
            stake[member.role] += self._stake(address, member.role)
        return Sample(
            t=round(now, 3),
            jobs={state: jobs.get(state, 0) for state in STATES},
            messages_per_s={},
            balance=dict(sorted(balance.items())),
            stake=dict(sorted(stake.items())),
            burned=self.ledger.burned,
            disputes=len(self.disputed),
        )

    def _stake(self, address: str, role: str) -> int:
        from coordination import Role

        kinds = {"solver": Role.SOLVER, "verifier": Role.VERIFIER, "referee": Role.REFEREE}
        if role not in kinds:
            return 0
        return int(self.chain.stake_of(kinds[role], address).active)  # locked included

    def latencies(self) -> list[float]:
        return sorted(
            round(self.closed_at[j] - self.posted_at[j], 3)
            for j in self.closed_at
            if j in self.posted_at
        )

    def summary(self, scenario: Scenario, processes: int, counters: Counter[str]) -> dict[str, Any]:
        ledger = self.ledger
        jobs = Counter(job.status.name.lower() for job in ledger.jobs.values())
        by_role = Counter(m.role for m in self.member_of.values())
        dishonest = Counter(m.behaviour for m in self.member_of.values() if not m.honest)
        cheats = Counter[str]()
        for job in ledger.jobs.values():
            member = self.member_of.get((job.solver or "").lower())
            if member is not None and member.behaviour.startswith("cheat:") and job.result_root:
                outcome = {"rejected": "caught", "settled": "missed"}
                cheats[outcome.get(job.status.name.lower(), "unresolved")] += 1
        honest_lost = sum(
            amount for address, amount in self.slashed.items() if self.member_of[address].honest
        )
        market = self.chain.balance_of(self.chain.address_book.contracts["JobMarket"])
        conservation = {
            "supply_matches_chain": ledger.supply == self.chain.total_supply(),
            "escrow_held_by_market": 0 <= ledger.escrow_held <= market,
        }
        latencies = self.latencies()
        return {
            "scenario": scenario.model_dump(mode="json"),
            "mode": {"processes": processes, "clock": "wall", "byte_identical": False},
            "agents": {
                "total": len(self.member_of),
                "by_role": dict(sorted(by_role.items())),
                "dishonest": dict(sorted(dishonest.items())),
                "vanished": dishonest.get("vanishing", 0),
            },
            "jobs": {**{s: jobs.get(s, 0) for s in STATES}, "total": len(ledger.jobs)},
            "cheats": {k: cheats.get(k, 0) for k in ("caught", "missed", "unresolved")},
            "disputes": {"opened": len(self.disputed)},
            "honest_stake_lost": honest_lost,
            "latency_s": latency_stats(latencies),
            "tokens": token_flows(ledger),
            "bus": {
                "frames_by_type": {},
                "rejected": {
                    k: v for k, v in sorted(counters.items()) if k.startswith("rejected.")
                },
                "dropped": {k: v for k, v in sorted(counters.items()) if k.startswith("dropped.")},
                "handler_errors": counters.get("handler_errors", 0),
                "task_errors": counters.get("task_errors", 0),
                "spam_sent": 0,
            },
            "network": {
                k: counters.get(k, 0) for k in ("sent", "received", "published") if k in counters
            },
            "chain": {"blocks": self.chain.block_number(), "events": self.events},
            "conservation": conservation,
            "checks": {
                "every_cheat_caught_when_checked": cheats.get("missed", 0) == 0,
                "honest_stake_lost_zero": honest_lost == 0,
                "conserved": all(conservation.values()),
            },
        }

"""``axl swarm simulate --processes N``: the scenario's market on the real network stack
instead of the memory network — an anvil node started here, the coordinator's hub agent
(:mod:`._process_hub`, also the swarm's libp2p bootstrap peer) and ``N`` workers
(:mod:`._process_worker`), each hosting a share of the agents over libp2p, one host per
agent, like ``axl run`` does for one. Workers are started here (``axl swarm worker``), or
``remote`` of them by hand on other machines with the join command the coordinator prints.

Time is the wall clock: ``duration`` is seconds of job arrivals; chain time runs with it, and
to close the challenge and dispute windows the coordinator moves anvil's clock on during the
drain (in steps of the challenge window, at most ``drain`` chain seconds). The report has the
same files and format as a virtual-time run, but it is not byte-identical from one run to
the next (scheduling, the network and the wall clock decide who bids first).
Adversaries: cheats (by kind), lazy, vanishing and colluding solvers, false accusers and
spammers; the scenario's link profile and timed partitions apply to every agent's inbound
frames (:mod:`._process_links`), on top of the real network.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import trio

from ._errors import InvalidScenario
from ._metrics import Sample
from ._process_hub import Hub
from ._process_roles import JOB_ATTEMPTS, REFEREE_STAKE
from ._process_watch import Member, Watcher, WorkerFacts
from ._report import Report
from ._scenario import Scenario

__all__ = ["Member", "check", "plan", "simulate_processes"]

TOKEN = 10**18
ALLOCATION = 10_000 * TOKEN  # tokens each agent's account gets at deployment
SETTLE = 2.0  # wall seconds between every worker ready and the go
COMMIT_PATIENCE = 30.0  # wall seconds the drain waits for an assigned job's commit
CHECK_PATIENCE = 20.0  # wall seconds the drain waits after a commit for verifiers' challenges
SETTLE_POLLS = 60  # seconds (polls) the end of the drain waits for the last settlements
READY_TIMEOUT = 300.0  # seconds for every worker to join and start (each imports torch)

Observer = Callable[[Sample, Scenario], None]
JoinAnnouncer = Callable[[str, str], None]
"""Called with the hub's multiaddr and the run's token once the hub listens (to start remote
workers: ``axl swarm worker --join ADDR --token TOKEN``)."""


def check(scenario: Scenario, processes: int, remote: int = 0) -> None:
    """Raise :class:`InvalidScenario` for worker counts a multi-process run cannot have."""
    if processes < 1:
        raise InvalidScenario("--processes: at least 1")
    if not 0 <= remote <= processes:
        raise InvalidScenario("--remote: between 0 and --processes")


def plan(scenario: Scenario) -> list[Member]:
    """Every agent, named and keyed from the seed: submitters, solvers (cheats by kind, lazy,
    vanishing, colluding, then honest), verifiers (false accusers, colluding, then honest),
    one referee and the spammers. The i-th colluding solver and verifier are partners."""
    roles, adv = scenario.roles, scenario.adversaries
    pairs = adv.colluding_pairs
    behaviours: dict[str, list[str]] = {
        "submitter": ["honest"] * roles.submitters,
        "solver": [f"cheat:{kind}" for kind, n in sorted(adv.cheats.items()) for _ in range(n)],
        "verifier": ["false_accuser"] * adv.false_accusers + ["colluding"] * pairs,
        "referee": ["honest"],
        "spammer": ["spammer"] * roles.spammers,
    }
    behaviours["solver"] += ["lazy"] * adv.lazy + ["vanishing"] * adv.vanishing
    behaviours["solver"] += ["colluding"] * pairs
    behaviours["solver"] += ["honest"] * (roles.solvers - len(behaviours["solver"]))
    behaviours["verifier"] += ["honest"] * (roles.verifiers - len(behaviours["verifier"]))
    members = []
    for role, kinds in behaviours.items():
        for index, behaviour in enumerate(kinds):
            name = "referee" if role == "referee" else f"{role}{index}"
            digest = hashlib.sha256(f"axl-processes/{scenario.seed}/{name}".encode()).digest()
            members.append(Member(name, role, behaviour, "0x" + digest.hex()))
    solvers = [m for m in members if m.role == "solver" and m.behaviour == "colluding"]
    verifiers = [m for m in members if m.role == "verifier" and m.behaviour == "colluding"]
    partners = {s.name: v.name for s, v in zip(solvers, verifiers, strict=True)}
    partners.update({v: s for s, v in partners.items()})
    return [replace(m, partner=partners.get(m.name, "")) for m in members]


def simulate_processes(
    scenario: Scenario,
    processes: int,
    *,
    out_dir: str | Path | None = None,
    observer: Observer | None = None,
    remote: int = 0,
    host: str = "127.0.0.1",
    on_join: JoinAnnouncer | None = None,
) -> Report:
    """Run ``scenario`` over ``processes`` workers (see the module doc) and return its
    :class:`Report`; with ``out_dir``, also write the report directory. ``remote`` of the
    workers are not started here: the run waits for them to join (``on_join`` gets the join
    address and token). ``host``: the address anvil and the hub listen on (another machine
    must reach both: e.g. this machine's LAN address). Blocking."""
    from coordination import ChainUnavailable, anvil_node

    check(scenario, processes, remote)
    members = plan(scenario)
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="axl-swarm-") as folder:
        try:
            with anvil_node(host=host) as url:
                run = _Run(scenario, processes, remote, members, url, Path(folder), host)
                report = run.run(observer, on_join)
        except ChainUnavailable as exc:
            raise InvalidScenario(f"--processes needs anvil (npm ci): {exc}") from None
        finally:
            if out_dir is not None:
                _keep_worker_logs(Path(folder), Path(out_dir) / "workers")
    report.wall_seconds = time.perf_counter() - wall
    if out_dir is not None:
        report.write(out_dir)
    return report


def _keep_worker_logs(folder: Path, into: Path) -> None:
    """Copy the local workers' stderr logs (``worker<i>.err``) into the report directory."""
    logs = sorted(folder.glob("worker*.err"))
    if logs:
        into.mkdir(parents=True, exist_ok=True)
        for log in logs:
            shutil.copyfile(log, into / log.name)


def _peer_of(name: str, seed: int) -> str:
    from .._wiring import identity_for

    return str(identity_for(name, None, f"axl-sim-{seed}".encode()).peer_id)


class _Run:
    """One multi-process run: deploy, start the hub and the workers, sample, drain, stop."""

    def __init__(
        self,
        scenario: Scenario,
        processes: int,
        remote: int,
        members: list[Member],
        url: str,
        folder: Path,
        host: str,
    ) -> None:
        self.scenario, self.processes, self.remote = scenario, processes, remote
        self.members, self.url, self.folder, self.host = members, url, folder, host
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, observer: Observer | None, on_join: JoinAnnouncer | None) -> Report:
        from eth_account import Account

        from coordination import Chain, DeployParams

        wall0 = time.perf_counter()
        funder = Chain.connect(self.url)  # anvil's first account deploys and pays the gas
        market = self.scenario.market
        params = DeployParams(
            challenge_window=market.challenge_window,
            dispute_window=market.dispute_window,
            fee_bps=market.fee_bps,
        )
        addresses = {
            m.name: Account.from_key(m.key).address for m in self.members if m.role != "spammer"
        }
        allocation = {
            address: ALLOCATION + (REFEREE_STAKE if name == "referee" else 0)
            for name, address in addresses.items()
        }
        chain = funder.deploy(params, allocation)
        for address in addresses.values():
            chain.fund(address, 10 * TOKEN)
        watcher = Watcher(chain, addresses, self.members, JOB_ATTEMPTS)
        try:
            return trio.run(self._coordinate, chain, addresses, watcher, observer, on_join, wall0)
        except BaseExceptionGroup as group:  # the runtime's nursery wraps what the run raised
            invalid, _ = group.split(InvalidScenario)
            if invalid is None:
                raise
            raise _first(invalid) from None
        finally:
            _stop(self.procs)

    def _plans(self, chain: Any, addresses: dict[str, str]) -> list[str]:
        scenario, members = self.scenario, self.members
        peers = [_peer_of(m.name, scenario.seed) for m in members]
        common = {
            "rpc": self.url,
            "book": chain.address_book.model_dump_json(),
            "scenario": scenario.model_dump(mode="json"),
            "referee": _peer_of("referee", scenario.seed),
            "peers": peers,
        }
        plans = []
        for index in range(self.processes):
            share = []
            for member in members[index :: self.processes]:
                entry = asdict(member)
                if member.behaviour == "colluding" and member.role == "verifier":
                    entry["partner"] = addresses[member.partner]  # the solver's address
                share.append(entry)
            if share:
                plans.append(json.dumps({**common, "members": share}))
        return plans

    async def _coordinate(
        self,
        chain: Any,
        addresses: dict[str, str],
        watcher: Watcher,
        observer: Observer | None,
        on_join: JoinAnnouncer | None,
        wall0: float,
    ) -> Report:
        from .._runtime import AgentRuntime
        from .._wiring import libp2p_transport

        scenario, market = self.scenario, self.scenario.market
        token = secrets.token_hex(16)
        hub = Hub(token, self._plans(chain, addresses))
        listen = [f"/ip4/{self.host}/tcp/0"]
        runtime = AgentRuntime(
            [hub], transport=libp2p_transport(listen=listen), flush_interval=None
        )
        async with runtime:
            join = hub.bus.transport.listen_addrs[0]  # type: ignore[attr-defined]
            if on_join is not None:
                on_join(join, token)
            for index in range(len(hub.plans) - min(self.remote, len(hub.plans))):
                self.procs.append(self._spawn(f"worker{index}", join, token))
            await self._wait_ready(hub)
            await trio.sleep(SETTLE)  # the gossip meshes form
            await hub.go()
            timings = {"setup_s": time.perf_counter() - wall0}
            samples: list[Sample] = []

            async def sample(t: float) -> None:
                samples.append(await trio.to_thread.run_sync(watcher.sample, t, hub.frames()))
                if observer is not None:
                    observer(samples[-1], scenario)

            t0 = trio.current_time()
            while (t := trio.current_time() - t0) < scenario.duration:
                await trio.sleep(min(scenario.sample_interval, scenario.duration - t))
                await sample(trio.current_time() - t0)
            advanced = 0

            async def open_jobs() -> int:
                return await trio.to_thread.run_sync(watcher.open_jobs, trio.current_time() - t0)

            patience = market.game_patience + 2 * market.query_timeout

            async def awaiting() -> int:
                now = trio.current_time() - t0
                return await trio.to_thread.run_sync(
                    watcher.awaiting, now, patience, COMMIT_PATIENCE, CHECK_PATIENCE
                )

            while advanced < scenario.drain and await open_jobs():
                await trio.sleep(min(3.0, scenario.sample_interval))  # the roles react first
                if await awaiting():  # commits and games run on the wall clock
                    await sample(trio.current_time() - t0)
                    continue
                step = min(market.challenge_window + 1, int(scenario.drain - advanced) or 1)
                await trio.to_thread.run_sync(chain.advance_time, step)
                advanced += step
                await sample(trio.current_time() - t0)
            # The last settlements and refunds run on the wall clock: on a loaded machine the
            # roles may still be acting on the last clock step, so wait for them (bounded).
            for _ in range(SETTLE_POLLS):  # polls the chain (through the watcher), 1 s apart
                if not await open_jobs():
                    break
                await trio.sleep(1.0)
            await trio.sleep(2.0)
            await hub.stop_workers()
            await sample(trio.current_time() - t0)
            timings["run_s"] = time.perf_counter() - wall0 - timings["setup_s"]
        workers = {"joined": len(hub.workers), "stopped": len(hub.finals)}
        facts = WorkerFacts(hub.frames(), hub.totals(), hub.spam_sent(), hub.checked(), workers)
        summary = watcher.summary(scenario, self.processes, facts)
        timings["total_s"] = time.perf_counter() - wall0
        return Report(scenario, summary, samples, watcher.latencies(), timings=timings)

    def _spawn(self, name: str, join: str, token: str) -> subprocess.Popen[bytes]:
        """A worker on this machine, through the same command a remote one runs."""
        args = [sys.executable, "-m", "agents", "swarm", "worker", "--join", join]
        args += ["--listen", f"/ip4/{self.host}/tcp/0"]
        env = {**os.environ, "AXL_SWARM_TOKEN": token}
        with (
            (self.folder / f"{name}.out").open("wb") as out,
            (self.folder / f"{name}.err").open("wb") as err,
        ):
            return subprocess.Popen(args, stdout=out, stderr=err, env=env)

    async def _wait_ready(self, hub: Hub) -> None:
        deadline = trio.current_time() + READY_TIMEOUT
        while not hub.ready():
            if hub.failed():
                raise InvalidScenario(f"agents failed to start: {', '.join(hub.failed())}")
            for index, process in enumerate(self.procs):
                if process.poll() is not None:
                    errors = (self.folder / f"worker{index}.err").read_text()[-600:]
                    raise InvalidScenario(f"a worker exited {process.returncode}: {errors}")
            if trio.current_time() > deadline:
                joined = len(hub.workers)
                raise InvalidScenario(
                    f"workers did not start within {READY_TIMEOUT:.0f} s "
                    f"({joined} of {len(hub.plans)} joined)"
                )
            await trio.sleep(0.2)


def _first(group: BaseExceptionGroup[InvalidScenario]) -> InvalidScenario:
    inner = group.exceptions[0]
    return inner if isinstance(inner, InvalidScenario) else _first(inner)


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

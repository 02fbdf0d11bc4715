"""The metrics collector: samples the swarm every ``sample_interval`` simulated seconds.

Chain facts come from chain events alone (folded into a ``coordination.MarketLedger`` plus
per-account balances and stakes); bus traffic from the counting transports; the ground truth
(who cheats, who was asked to check what) from the world. Everything is stamped with
simulated time, so the series are deterministic."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from coordination import ChainEvent, JobStatus, MarketLedger

from ..market import MarketChain
from ._bank import CLOCK_STEP, GENESIS, TOKEN
from ._netstats import TrafficCounter
from ._world import World

ZERO = "0x" + "00" * 20
_DISPUTE_OUTCOME = {JobStatus.SETTLED: "solver won", JobStatus.REJECTED: "challenger won"}
STATES = ("posted", "assigned", "committed", "disputed", "settled", "rejected", "refunded")


@dataclass
class JobTrack:
    """One job's life in simulated seconds: when each state was first seen."""

    job_id: int
    solver: str | None = None
    seen: dict[str, float] = field(default_factory=dict)


@dataclass
class Sample:
    t: float
    jobs: dict[str, int]
    messages_per_s: dict[str, float]
    balance: dict[str, int]
    stake: dict[str, int]
    burned: int
    disputes: int


class Collector:
    """Folds chain events and traffic into time series (see the module doc)."""

    def __init__(self, world: World, traffic: TrafficCounter) -> None:
        self.world = world
        self.traffic = traffic
        self.ledger = MarketLedger()
        self.cursor = world.bank.admin.event_cursor(0)
        self._events = MarketChain(world.bank.admin)  # reads the agents' shared event log
        contracts = world.bank.admin.address_book.contracts
        self._market = contracts["JobMarket"].lower()
        self._staking = contracts["Staking"].lower()
        self.balances: Counter[str] = Counter()
        self.stakes: Counter[str] = Counter()
        self.slashed: Counter[str] = Counter()
        self.pools_in = 0  # slashed solver stake pooled in the market for challengers
        self.staking_out = 0  # tokens leaving staking to an account (withdrawals, slash rewards)
        self.verifier_paid = 0
        self.jobs: dict[int, JobTrack] = {}
        self.samples: list[Sample] = []
        self.events = 0
        self.blocks = 0
        self._last_traffic: dict[str, int] = {}
        self._last_t = 0.0

    def role_of(self, address: str) -> str:
        name = self.world.name_of(address)
        if name is None:
            return "market" if address != ZERO else "none"
        member = self.world.members[name]
        return member.role if member.honest else f"{member.role} (dishonest)"

    def _fold(self, event: ChainEvent, now: float) -> None:
        self.ledger.apply(event)
        self.events += 1
        key = (event.contract, event.name)
        if key == ("AIToken", "Transfer"):
            self.balances[event["from"].lower()] -= event["value"]
            self.balances[event["to"].lower()] += event["value"]
            if event["from"].lower() == self._staking and event["to"] != ZERO:
                self.staking_out += event["value"]
        elif key == ("Staking", "Staked"):
            self.stakes[event["account"].lower()] += event["amount"]
        elif key == ("Staking", "Withdrawn"):
            self.stakes[event["account"].lower()] -= event["amount"]
        elif key == ("Staking", "Slashed"):
            self.stakes[event["account"].lower()] -= event["amount"]
            self.slashed[event["account"].lower()] += event["amount"]
            if event["beneficiary"].lower() == self._market:
                self.pools_in += event["reward"]
        elif key == ("JobMarket", "VerifierPaid"):
            self.verifier_paid += event["amount"]
            self._job_event(event["jobId"], event, now)
        elif event.contract == "JobMarket" and "jobId" in event.args:
            self._job_event(event["jobId"], event, now)
        elif key == ("JobMarket", "BatchCommitted"):
            for job_id in event["jobIds"]:
                self._job_event(job_id, event, now)

    def _job_event(self, job_id: int, event: ChainEvent, now: float) -> None:
        track = self.jobs.setdefault(job_id, JobTrack(job_id))
        job = self.ledger.jobs.get(job_id)
        if job is None:
            return
        if job.solver is not None and track.solver is None:
            track.solver = self.world.name_of(job.solver)
        track.seen.setdefault(job.status.name.lower(), now)

    def poll(self, now: float) -> None:
        """Fold the chain events mined since the last poll, stamped ``now``."""
        for event in self._events.poll_now(self.cursor):
            self._fold(event, now)
        self.blocks = self.cursor.next_block

    def sample(self, now: float) -> Sample:
        """Poll, then record one sample of every series."""
        self.poll(now)
        jobs = Counter(job.status.name.lower() for job in self.ledger.jobs.values())
        traffic = self.traffic.snapshot()
        span = max(now - self._last_t, 1e-9)
        rates = {
            kind: (count - self._last_traffic.get(kind, 0)) / span
            for kind, count in sorted(traffic.items())
        }
        self._last_traffic, self._last_t = traffic, now
        balance: Counter[str] = Counter()
        stake: Counter[str] = Counter()
        for address, amount in self.balances.items():
            if address != ZERO:
                balance[self.role_of(address)] += amount
        for address, amount in self.stakes.items():
            stake[self.role_of(address)] += amount
        sample = Sample(
            t=now,
            jobs={state: jobs.get(state, 0) for state in STATES},
            messages_per_s=rates,
            balance=dict(sorted(balance.items())),
            stake=dict(sorted(stake.items())),
            burned=self.ledger.burned,
            disputes=sum(1 for t in self.jobs.values() if "disputed" in t.seen),
        )
        self.samples.append(sample)
        return sample

    # -- the verdicts --------------------------------------------------------------------------

    def outcomes(self) -> dict[str, Any]:
        """Cheats caught or missed, honest stake lost, disputes and their outcomes, latency.

        A cheat is a committed root of a dishonest solver that differs from the honest root
        (the journal knows); a cheat that happened to change nothing counts as ``harmless``;
        one whose challenge or dispute window had not closed when the run ended (a job posted
        again late in the drain) as ``open_at_end``, and is not judged."""
        world = self.world
        harmless = sum(1 for wrong in world.journal.wrong.values() if not wrong)
        cheats = dict.fromkeys(
            ("caught", "missed", "unresolved", "open_at_end", "checked_by_honest",
             "caught_when_checked", "missed_when_checked"), 0)  # fmt: skip
        # a job whose window closes after the run ended (a late repost) is not judged
        chain_end = world.bank.admin.block_timestamp() - 2 * world.scenario.market.settle_interval
        cheats["harmless"] = harmless
        disputes: Counter[str] = Counter()
        latencies: list[float] = []
        for job_id in sorted(self.jobs):
            track = self.jobs[job_id]
            job = self.ledger.jobs[job_id]
            status = job.status
            if "disputed" in track.seen:
                disputes[_DISPUTE_OUTCOME.get(status, "open")] += 1
            if status in (JobStatus.SETTLED, JobStatus.REJECTED, JobStatus.REFUNDED):
                end = track.seen.get(status.name.lower())
                if end is not None and "posted" in track.seen:
                    latencies.append(end - track.seen["posted"])
            member = world.members.get(track.solver or "")
            if member is None or member.honest or not world.journal.wrong.get(job_id, False):
                continue
            if "committed" not in track.seen:
                continue
            if (
                status in (JobStatus.COMMITTED, JobStatus.DISPUTED)
                and (job.dispute_end or job.challenge_end or 0) > chain_end - CLOCK_STEP
            ):
                cheats["open_at_end"] += 1
                continue
            checked = any(world.members[v].honest for v in world.journal.checks.get(job_id, []))
            judge_cheat(cheats, status.name, checked)
        honest_lost = sum(
            amount
            for address, amount in self.slashed.items()
            if (name := world.name_of(address)) is not None and world.members[name].honest
        )
        return {
            "cheats": cheats,
            "disputes": dict(sorted(disputes.items())),
            "honest_stake_lost": honest_lost,
            "latencies": latencies,
        }

    def conservation(self) -> dict[str, bool]:
        """Supply, escrow and stake conserve — from chain events, cross-checked with the
        contracts' balances. Nothing is created after genesis (the deployment's allocation is
        the only mint) and nothing is lost but the fee and slash burns. The market holds the
        open escrow plus the slashed solver stake pooled for challengers, less the pool shares
        already claimed; every settled verifier fee went to attesters; stake leaves staking
        only as withdrawals, slash rewards (to a solver or the pool) and slash burns."""
        admin, ledger = self.world.bank.admin, self.ledger
        return {
            "supply": ledger.supply == admin.total_supply() and ledger.minted == GENESIS,
            "burns_are_fees_or_slashes": ledger.burned == ledger.fees_burned + ledger.slash_burned
            and ledger.fees == ledger.fees_burned,
            "escrow": ledger.escrow_held + self.pools_in - ledger.rewards
            == admin.balance_of(self._market)
            and ledger.verifier_fees == self.verifier_paid,
            "stake": ledger.stake_held == admin.balance_of(self._staking)
            and sum(self.stakes.values()) == ledger.stake_held
            and self.staking_out == ledger.withdrawn + ledger.slash_rewards,
            "balances": all(
                amount == admin.balance_of(address)
                for address, amount in sorted(self.balances.items())[:200]
                if address != ZERO
            ),
        }


def judge_cheat(cheats: dict[str, int], status: str, checked: bool) -> None:
    """Count a cheating solver's closed job in ``cheats``: caught (rejected), missed (settled)
    or unresolved, and ``..._when_checked`` too when an honest verifier re-ran it."""
    cheats["checked_by_honest"] += checked
    if status == "REJECTED":
        cheats["caught"] += 1
        cheats["caught_when_checked"] += checked
    elif status == "SETTLED":
        cheats["missed"] += 1
        cheats["missed_when_checked"] += checked
    else:
        cheats["unresolved"] += 1


def latency_stats(values: list[float]) -> dict[str, float]:
    """Count, mean and percentiles (p50/p90/p99, max) of ``values``, rounded to 3 decimals."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def q(f: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(f * len(ordered)))], 3)

    return {
        "count": len(ordered),
        "mean": round(statistics.fmean(ordered), 3),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": round(ordered[-1], 3),
    }


def token_flows(ledger: MarketLedger) -> dict[str, int]:
    """The summary's token section: every flow of the ledger, in base units."""
    return {
        "minted": ledger.minted,
        "burned": ledger.burned,
        "fees_burned": ledger.fees_burned,
        "slash_burned": ledger.slash_burned,
        "slash_rewards": ledger.slash_rewards,
        "paid": ledger.paid,
        "refunded": ledger.refunded,
        "escrow_held": ledger.escrow_held,
        "stake_held": ledger.stake_held,
        "supply": ledger.supply,
        "unit": TOKEN,
    }

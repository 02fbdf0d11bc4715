"""What a ``--processes`` run reports, as the chain and the workers tell it: jobs by state,
balances and stake per role, burned tokens, disputes and bus frames per second by type over
time; at the end, the summary with its checks (the same keys as a virtual-time run's)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._metrics import STATES, Sample, judge_cheat, latency_stats, token_flows
from ._scenario import Scenario

_CLOSED = ("SETTLED", "REFUNDED", "REJECTED")
_OPEN = ("COMMITTED", "DISPUTED")


@dataclass(frozen=True)
class Member:
    """One agent of the plan: its runtime name, role, behaviour, chain key (hex) and, for a
    colluding pair, its partner's name."""

    name: str
    role: str
    behaviour: str
    key: str
    partner: str = ""

    @property
    def honest(self) -> bool:
        return self.behaviour == "honest"

    @property
    def cheats(self) -> bool:
        """A solver whose committed roots are not its honest run's."""
        return self.role == "solver" and (
            self.behaviour.startswith("cheat:") or self.behaviour in ("lazy", "colluding")
        )


@dataclass
class WorkerFacts:
    """What the workers reported: frames sent by type, runtime counters, spam sent, and each
    verifier's re-runs (job id → reproduced the committed root)."""

    frames: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    spam_sent: int = 0
    checked: dict[str, dict[int, bool]] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)
    """How many joined, and how many answered the stop with a final report."""


class Watcher:
    """Samples the run (see the module doc); :meth:`summary` at the end."""

    def __init__(
        self, chain: Any, addresses: dict[str, str], members: list[Member], attempts: int
    ) -> None:
        """``attempts``: how many times a submitter posts a job in all (a refunded job with
        attempts left is posted again, so it is still open work)."""
        from coordination import MarketLedger

        self.chain = chain
        self.ledger = MarketLedger()
        self.cursor = chain.event_cursor(chain.address_book.block_number)
        self.members = members
        self.attempts = attempts
        self.member_of = {addresses[m.name].lower(): m for m in members if m.name in addresses}
        self.posted_at: dict[int, float] = {}
        self.closed_at: dict[int, float] = {}
        self.disputed: set[int] = set()
        self.challenged_at: dict[int, float] = {}
        self.voted: set[int] = set()
        self.assigned_at: dict[int, float] = {}
        self.committed_at: dict[int, float] = {}
        self.slashed: Counter[str] = Counter()
        self.events = 0
        self._frames: Counter[str] = Counter()
        self._frames_t = 0.0

    def _poll(self, now: float) -> None:
        for event in self.cursor.poll():
            self.events += 1
            self.ledger.apply(event)
            if event.name == "JobsPosted":
                for i in range(len(event["specHashes"])):
                    self.posted_at[int(event["firstJobId"]) + i] = now
            elif event.name == "Challenged":
                self.disputed.add(int(event["jobId"]))
                self.challenged_at.setdefault(int(event["jobId"]), now)
            elif event.name == "Voted":
                self.voted.add(int(event["jobId"]))
            elif event.name == "Slashed":
                self.slashed[str(event["account"]).lower()] += int(event["amount"])
        for job in self.ledger.jobs.values():
            if job.status.name in _CLOSED:
                self.closed_at.setdefault(job.job_id, now)
            elif job.status.name == "ASSIGNED":
                self.assigned_at.setdefault(job.job_id, now)
            elif job.status.name == "COMMITTED":
                self.committed_at.setdefault(job.job_id, now)

    def open_jobs(self, now: float) -> int:
        """Jobs not closed on chain, and refunded ones their submitter will post again:
        between a refund and its repost nothing is open on chain, yet the run is not over."""
        self._poll(now)
        unclosed = sum(1 for j in self.ledger.jobs.values() if j.job_id not in self.closed_at)
        return unclosed + self._reposts_due()

    def _reposts_due(self) -> int:
        latest: dict[bytes, str] = {}
        posts: Counter[bytes] = Counter()
        for job in self.ledger.jobs.values():  # in posting order: the last one counts
            latest[job.spec_hash] = job.status.name
            posts[job.spec_hash] += 1
        refunded = ("REFUNDED", "REJECTED")
        return sum(1 for h, s in latest.items() if s in refunded and posts[h] < self.attempts)

    def awaiting(
        self, now: float, vote_patience: float, commit_patience: float, check_patience: float
    ) -> int:
        """Work the chain clock must not overtake, as the roles run on the wall clock: jobs
        assigned less than ``commit_patience`` wall seconds ago and not committed yet (their
        deadline would pass under the solver), jobs committed less than ``check_patience``
        ago (verifiers re-run them and challenge: a step of the clock would close the
        challenge window before they could), and disputes without the referee's vote,
        challenged less than ``vote_patience`` ago (the window would close under the game)."""
        self._poll(now)
        jobs = self.ledger.jobs
        committing = sum(
            1
            for job_id, since in self.assigned_at.items()
            if jobs[job_id].status.name == "ASSIGNED" and now - since < commit_patience
        )
        committing += sum(
            1
            for job_id, since in self.committed_at.items()
            if jobs[job_id].status.name == "COMMITTED" and now - since < check_patience
        )
        voting = sum(
            1
            for job_id, since in self.challenged_at.items()
            if job_id not in self.voted
            and jobs[job_id].status.name == "DISPUTED"
            and now - since < vote_patience
        )
        return committing + voting

    def sample(self, now: float, frames: Counter[str]) -> Sample:
        """One sample at ``now`` (wall seconds since the start); ``frames``: every frame sent
        so far by type, summed over the workers (the rates are the change since the last)."""
        self._poll(now)
        span = max(now - self._frames_t, 1e-9)
        rates = {
            k: round((v - self._frames.get(k, 0)) / span, 3) for k, v in sorted(frames.items())
        }
        self._frames, self._frames_t = Counter(frames), now
        jobs = Counter(job.status.name.lower() for job in self.ledger.jobs.values())
        balance: Counter[str] = Counter()
        stake: Counter[str] = Counter()
        for address, member in self.member_of.items():
            role = member.role if member.honest else f"{member.role} (dishonest)"
            balance[role] += self.chain.balance_of(address)
            stake[role] += self._stake(address, member.role)
        return Sample(
            t=round(now, 3),
            jobs={state: jobs.get(state, 0) for state in STATES},
            messages_per_s=rates,
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

    def cheats(self, checked: dict[str, dict[int, bool]]) -> dict[str, int]:
        """The cheats' outcomes, judged like a virtual-time run's: a job of a cheating solver
        whose root an honest verifier reproduced is ``harmless``; one still in its windows at
        the end is ``open_at_end``; the rest are caught (rejected), missed (settled) or
        unresolved, and counted ``..._when_checked`` when an honest verifier re-ran it."""
        honest = {m.name for m in self.members if m.role == "verifier" and m.honest}
        cheats = dict.fromkeys(
            ("caught", "missed", "unresolved", "open_at_end", "harmless", "checked_by_honest",
             "caught_when_checked", "missed_when_checked"), 0)  # fmt: skip
        for job in self.ledger.jobs.values():
            member = self.member_of.get((job.solver or "").lower())
            if member is None or not member.cheats or not job.result_root:
                continue
            verdicts = [checked[v][job.job_id] for v in honest if job.job_id in checked.get(v, {})]
            if verdicts and all(verdicts):
                cheats["harmless"] += 1
                continue
            status = job.status.name
            if status in _OPEN:
                cheats["open_at_end"] += 1
                continue
            judge_cheat(cheats, status, bool(verdicts))
        return cheats

    def summary(self, scenario: Scenario, processes: int, facts: WorkerFacts) -> dict[str, Any]:
        ledger, counters = self.ledger, facts.counters
        jobs = Counter(job.status.name.lower() for job in ledger.jobs.values())
        by_role = Counter(m.role for m in self.members)
        dishonest = Counter(
            m.behaviour for m in self.members if not m.honest and m.role != "spammer"
        )
        cheats = self.cheats(facts.checked)
        honest_lost = sum(
            amount for address, amount in self.slashed.items() if self.member_of[address].honest
        )
        market = self.chain.balance_of(self.chain.address_book.contracts["JobMarket"])
        conservation = {
            "supply_matches_chain": ledger.supply == self.chain.total_supply(),
            "escrow_held_by_market": 0 <= ledger.escrow_held <= market,
        }
        return {
            "scenario": scenario.model_dump(mode="json"),
            "mode": {"processes": processes, "clock": "wall", "byte_identical": False},
            "workers": facts.workers,
            "agents": {
                "total": len(self.members),
                "by_role": dict(sorted(by_role.items())),
                "dishonest": dict(sorted(dishonest.items())),
                "vanished": dishonest.get("vanishing", 0),
            },
            "jobs": {**{s: jobs.get(s, 0) for s in STATES}, "total": len(ledger.jobs)},
            "cheats": cheats,
            "disputes": {"opened": len(self.disputed)},
            "honest_stake_lost": honest_lost,
            "latency_s": latency_stats(self.latencies()),
            "tokens": token_flows(ledger),
            "bus": {
                "frames_by_type": dict(sorted(facts.frames.items())),
                "rejected": {
                    k: v for k, v in sorted(counters.items()) if k.startswith("rejected.")
                },
                "dropped": {k: v for k, v in sorted(counters.items()) if k.startswith("dropped.")},
                "handler_errors": counters.get("handler_errors", 0),
                "task_errors": counters.get("task_errors", 0),
                "spam_sent": facts.spam_sent,
            },
            "network": {
                k: counters.get(k, 0)
                for k in ("sent", "received", "published", "delivered", "lost", "partitioned")
                if k in counters
            },
            "chain": {"blocks": self.chain.block_number(), "events": self.events},
            "conservation": conservation,
            "checks": {
                "every_cheat_caught_when_checked": cheats["missed_when_checked"] == 0
                and cheats["caught_when_checked"] == cheats["checked_by_honest"],
                "honest_stake_lost_zero": honest_lost == 0,
                "conserved": all(conservation.values()),
            },
        }

"""What every simulated agent shares: the scenario, the bank (chain), the roster (who plays
which role, honestly or not, in which market shard), the seeded draws every agent agrees on,
and the journal (ground truth the chain cannot know)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agents.market import JobPosted, JobTaken
from axl import DecodeError, Envelope, Message, PeerId

from ._bank import Bank
from ._scenario import Scenario

if TYPE_CHECKING:
    from agents import Agent

HONEST = "honest"
MARKET_TOPIC = "market.jobs"  # agents.market's topic; shard n > 0 publishes on "<topic>/<n>"


_PEEKABLE: dict[tuple[str, int], type[Message]] = {
    (cls.axl_tag, cls.axl_version): cls for cls in (JobPosted, JobTaken)
}


@dataclass(slots=True)
class Member:
    """One agent of the swarm: its role and behaviour (``honest``, ``cheat:<kind>``, ``lazy``,
    ``vanishing``, ``false_accuser``, ``colluding``, ``spammer``); ``partner`` names the other
    half of a colluding pair; ``shard`` the market topic it trades on."""

    name: str
    role: str
    behaviour: str = HONEST
    partner: str | None = None
    peer: PeerId | None = None
    shard: int = 0

    @property
    def honest(self) -> bool:
        return self.behaviour == HONEST


@dataclass
class Journal:
    """Facts only the simulator knows: which verifiers re-ran which job, whether a dishonest
    solver's committed root differs from the honest one (a cheat that happens to change
    nothing is no cheat), how much spam was sent."""

    checks: dict[int, list[str]] = field(default_factory=dict)
    wrong: dict[int, bool] = field(default_factory=dict)  # dishonest solvers' jobs: wrong root?
    spam_sent: int = 0


@dataclass
class World:
    scenario: Scenario
    bank: Bank
    eager: bool = True
    """Agents start as ``agents.market`` roles do (funded before the run, bind and stake at
    start); otherwise each is funded and started as a market role when it first has work."""
    members: dict[str, Member] = field(default_factory=dict)
    journal: Journal = field(default_factory=Journal)
    by_role: dict[str, list[str]] = field(default_factory=dict)
    by_shard: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    shards: int = 1
    _draws: dict[tuple[str, int, int], list[str]] = field(default_factory=dict)
    _peeked: tuple[Envelope, Message | None] | None = None

    def rng(self, name: str) -> random.Random:
        """A random stream of its own for ``name``, derived from the scenario seed."""
        digest = hashlib.sha256(f"axl-sim\0{self.scenario.seed}\0{name}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def price(self, name: str) -> int:
        """A solver's asking price per step (a seeded draw, 1-100 base units): submitters
        prefer cheap solvers."""
        digest = hashlib.sha256(f"price\0{self.scenario.seed}\0{name}".encode()).digest()
        return 1 + int.from_bytes(digest[:4], "big") % 100

    def add(self, member: Member) -> Member:
        self.members[member.name] = member
        self.by_role.setdefault(member.role, []).append(member.name)
        self.by_shard.setdefault((member.role, member.shard), []).append(member.name)
        return member

    def topic(self, shard: int) -> str:
        """The market topic of ``shard``: ``agents.market``'s own when there is one shard
        (every market role also joins that one: with several shards nobody publishes there)."""
        return MARKET_TOPIC if self.shards == 1 else f"{MARKET_TOPIC}/{shard}"

    def candidates(self, job_id: int, shard: int) -> list[str]:
        """The solvers of ``shard`` that may bid on ``job_id``: ``jobs.candidates`` of them,
        a seeded draw (so a job is not auctioned to every solver of a large swarm)."""
        return self._draw("bid", job_id, shard, self.scenario.jobs.candidates, 1.0)

    def checkers(self, job_id: int, shard: int) -> list[str]:
        """The verifiers of ``shard`` that re-run ``job_id``'s result: with probability
        ``jobs.verify_rate``, ``jobs.checkers`` of them, a seeded draw."""
        jobs = self.scenario.jobs
        return self._draw("verifier", job_id, shard, jobs.checkers, jobs.verify_rate)

    def _draw(self, role: str, job_id: int, shard: int, count: int, rate: float) -> list[str]:
        key = (role, job_id, shard)
        drawn = self._draws.get(key)
        if drawn is None:
            rng = self.rng(f"{role}\0{job_id}\0{shard}")
            pool = self.by_shard.get(("solver" if role == "bid" else role, shard), [])
            drawn = rng.sample(pool, min(count, len(pool))) if rng.random() < rate else []
            self._draws[key] = drawn
        return drawn

    def peek(self, envelope: Envelope) -> Message | None:
        """The message a published envelope carries, decoded once for all its receivers'
        filters (the network asks each receiver about the same envelope in turn), or None
        for an unknown type or a payload that does not decode (the bus rejects those)."""
        last = self._peeked
        if last is not None and last[0] is envelope:
            return last[1]
        message: Message | None = None
        cls = _PEEKABLE.get((envelope.type, envelope.version))
        if cls is not None:
            try:
                message = cls.decode_payload(envelope.payload)
            except DecodeError:
                message = None
        self._peeked = (envelope, message)
        return message

    def name_of(self, address: str | None) -> str | None:
        """The member whose wallet ``address`` is (wallets exist once used: lazily)."""
        return None if address is None else self.bank.by_address.get(address.lower())

"""What every simulated agent shares: the scenario, the bank (chain), the roster (who plays
which role, honestly or not) and the journal (ground truth the chain cannot know)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from axl import PeerId

from ._bank import Bank
from ._scenario import Scenario

HONEST = "honest"


@dataclass(slots=True)
class Member:
    """One agent of the swarm: its role and behaviour (``honest``, ``cheat:<kind>``, ``lazy``,
    ``vanishing``, ``false_accuser``, ``colluding``, ``spammer``); ``partner`` names the other
    half of a colluding pair."""

    name: str
    role: str
    behaviour: str = HONEST
    partner: str | None = None
    peer: PeerId | None = None

    @property
    def honest(self) -> bool:
        return self.behaviour == HONEST


@dataclass
class Journal:
    """Facts only the simulator knows: which verifiers were asked to check which job, whether
    a dishonest solver's committed root differs from the honest one (a cheat that happens to
    change nothing is no cheat), which solvers vanished, how much spam was sent, how many jobs
    found no solver."""

    checks: dict[int, list[str]] = field(default_factory=dict)
    wrong: dict[int, bool] = field(default_factory=dict)  # dishonest solvers' jobs: wrong root?
    vanished: list[str] = field(default_factory=list)
    spam_sent: int = 0
    unplaced: int = 0
    disputes_opened: int = 0
    games: dict[int, str] = field(default_factory=dict)  # job id -> the referee's vote
    claimed: set[tuple[int, str]] = field(default_factory=set)  # (job id, account) claimed


@dataclass
class World:
    scenario: Scenario
    bank: Bank
    members: dict[str, Member] = field(default_factory=dict)
    journal: Journal = field(default_factory=Journal)
    by_role: dict[str, list[str]] = field(default_factory=dict)

    def rng(self, name: str) -> random.Random:
        """A random stream of its own for ``name``, derived from the scenario seed."""
        digest = hashlib.sha256(f"axl-sim\0{self.scenario.seed}\0{name}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def price(self, name: str) -> int:
        """A solver's asking price (a seeded draw, 1-100): submitters prefer cheap solvers."""
        return (
            1
            + int.from_bytes(
                hashlib.sha256(f"price\0{self.scenario.seed}\0{name}".encode()).digest()[:4], "big"
            )
            % 100
        )

    def add(self, member: Member) -> Member:
        self.members[member.name] = member
        self.by_role.setdefault(member.role, []).append(member.name)
        return member

    def name_of(self, address: str | None) -> str | None:
        """The member whose wallet ``address`` is (wallets exist once used: lazily)."""
        return None if address is None else self.bank.by_address.get(address.lower())

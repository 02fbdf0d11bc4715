"""The scenario of a swarm simulation: who takes part, who cheats and how, what jobs arrive,
what the network does, for how long, from which seed. Loaded from TOML or built in Python;
validated on construction (``InvalidScenario``)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from compute import CheatKind

from ._errors import InvalidScenario

CHEAT_KINDS: tuple[str, ...] = get_args(CheatKind)
"""Every way a solver can cheat in the compute layer (``compute.Cheat``)."""

_Count = Annotated[int, Field(ge=0, le=1_000_000)]
_Seconds = Annotated[float, Field(ge=0, le=10 * 24 * 3600, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Roles(_Model):
    """How many agents play each role (the adversaries below are drawn from these counts)."""

    submitters: Annotated[int, Field(ge=1, le=1_000_000)] = 2
    solvers: Annotated[int, Field(ge=1, le=1_000_000)] = 6
    verifiers: _Count = 3
    spammers: _Count = 0


class Adversaries(_Model):
    """Dishonest agents, taken from the role counts.

    * ``cheats``: solvers that cheat in one of the compute layer's ways, by kind
      (:data:`CHEAT_KINDS`), e.g. ``{"wrong_op": 1, "silent": 1}``;
    * ``lazy``: solvers that do not train and commit another job's root (copied from chain);
    * ``vanishing``: solvers that accept a job and then stop without a word;
    * ``false_accusers``: verifiers that challenge honest results with a made-up root;
    * ``colluding_pairs``: a cheating solver (``wrong_op``) with a verifier that vouches for
      it when asked to check its jobs (and behaves honestly otherwise).
    """

    cheats: dict[str, _Count] = Field(default_factory=dict)
    lazy: _Count = 0
    vanishing: _Count = 0
    false_accusers: _Count = 0
    colluding_pairs: _Count = 0

    @model_validator(mode="after")
    def _known_kinds(self) -> Adversaries:
        unknown = sorted(set(self.cheats) - set(CHEAT_KINDS))
        if unknown:
            raise ValueError(f"unknown cheat kinds {unknown}; known: {list(CHEAT_KINDS)}")
        return self

    @property
    def dishonest_solvers(self) -> int:
        return sum(self.cheats.values()) + self.lazy + self.vanishing + self.colluding_pairs

    @property
    def dishonest_verifiers(self) -> int:
        return self.false_accusers + self.colluding_pairs


class Jobs(_Model):
    """Job arrivals and sizes.

    Each submitter posts jobs as a Poisson process of ``rate_per_hour`` (its own seeded
    stream). A job trains a tiny MLP for a number of steps drawn uniformly from ``steps``;
    ``step_seconds`` is the simulated compute time per step (training itself runs for real,
    but takes no simulated time). Each result is checked with probability ``verify_rate`` by
    ``checkers`` verifiers drawn at random. A submitter awards a job to the cheapest of
    ``candidates`` solvers drawn at random (1: a random solver), then tries a few more."""

    rate_per_hour: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)] = 60.0
    steps: tuple[Annotated[int, Field(ge=1, le=64)], Annotated[int, Field(ge=1, le=64)]] = (2, 6)
    step_seconds: _Seconds = 2.0
    payment: Annotated[int, Field(ge=1, le=10**9)] = 10  # AI tokens
    deadline: Annotated[float, Field(gt=0, le=10 * 24 * 3600, allow_inf_nan=False)] = 600.0
    verify_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 1.0
    checkers: Annotated[int, Field(ge=1, le=16)] = 1
    candidates: Annotated[int, Field(ge=1, le=6)] = 3
    hidden: Annotated[int, Field(ge=1, le=64)] = 4

    @model_validator(mode="after")
    def _ordered(self) -> Jobs:
        if self.steps[0] > self.steps[1]:
            raise ValueError("steps is (min, max) with min <= max")
        return self


class Partition(_Model):
    """From ``start`` for ``duration`` simulated seconds, a seeded ``share`` of the agents is
    cut off from the rest."""

    start: _Seconds
    duration: Annotated[float, Field(gt=0, le=10 * 24 * 3600, allow_inf_nan=False)]
    share: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.5


class Network(_Model):
    """Link behaviour of the memory network: latency and jitter in seconds, loss in [0, 1)."""

    latency: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 0.05
    jitter: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 0.02
    loss: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0
    partitions: tuple[Partition, ...] = ()


class Market(_Model):
    """Protocol parameters of the deployment (see docs/coordination.md), and the roles'
    timing: how often submitters look for settleable jobs, how long a request waits, and how
    long the referee keeps asking a silent party before it loses (``game_patience``: a
    partition longer than that makes an honest party lose its game). A large swarm trades on
    several market topics, one per ``shard_size`` agents (each a market of its own: its
    submitters, solvers and verifiers; one referee for all). The windows have the
    contracts' bounds (challenge 10 min to, here, 7 days; dispute 1 h to 7 days): a dispute
    ends ``challenge_window + dispute_window`` after the commit, so ``drain`` should cover
    both for the last jobs to close."""

    challenge_window: Annotated[int, Field(ge=600, le=7 * 24 * 3600)] = 600
    dispute_window: Annotated[int, Field(ge=3600, le=7 * 24 * 3600)] = 3600
    fee_bps: Annotated[int, Field(ge=0, le=1000)] = 50
    settle_interval: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 30.0
    query_timeout: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 10.0
    game_patience: Annotated[float, Field(gt=0, le=24 * 3600, allow_inf_nan=False)] = 300.0
    shard_size: Annotated[int, Field(ge=2, le=1_000_000)] = 250


class Scenario(_Model):
    """A whole simulation. ``duration`` is simulated seconds; the same ``seed`` gives the same
    report byte for byte. ``spam_rate`` is invalid frames per spammer per simulated second;
    ``sample_interval`` the metrics' time resolution. ``provision``: give every agent its
    tokens and stake before the run (``eager``; a sweep snapshots that chain and reuses it),
    or each agent when it first needs them (``lazy``: chain cost grows with active agents,
    not all agents); ``auto`` is eager up to 300 agents."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = "swarm"
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    duration: Annotated[float, Field(gt=0, le=7 * 24 * 3600, allow_inf_nan=False)] = 3600.0
    drain: Annotated[float, Field(ge=0, le=7 * 24 * 3600, allow_inf_nan=False)] = 4800.0
    sample_interval: Annotated[float, Field(ge=1, le=3600, allow_inf_nan=False)] = 10.0
    provision: Literal["auto", "eager", "lazy"] = "auto"
    spam_rate: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] = 1.0
    roles: Roles = Field(default_factory=Roles)
    adversaries: Adversaries = Field(default_factory=Adversaries)
    jobs: Jobs = Field(default_factory=Jobs)
    network: Network = Field(default_factory=Network)
    market: Market = Field(default_factory=Market)

    @model_validator(mode="after")
    def _fits(self) -> Scenario:
        adv = self.adversaries
        if adv.dishonest_solvers > self.roles.solvers:
            raise ValueError(
                f"{adv.dishonest_solvers} dishonest solvers but only {self.roles.solvers} solvers"
            )
        if adv.dishonest_verifiers > self.roles.verifiers:
            raise ValueError(
                f"{adv.dishonest_verifiers} dishonest verifiers but only "
                f"{self.roles.verifiers} verifiers"
            )
        for part in self.network.partitions:
            if part.start >= self.duration:
                raise ValueError(f"a partition starts at {part.start}, after the run ends")
        return self

    @property
    def agents(self) -> int:
        """Every agent of the swarm (the referee included)."""
        r = self.roles
        return r.submitters + r.solvers + r.verifiers + r.spammers + 1

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Scenario:
        """Validate a mapping (e.g. parsed TOML). Raises :class:`InvalidScenario`."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise InvalidScenario(_explain(exc)) from None

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read a TOML scenario file. Raises :class:`InvalidScenario` (also for bad TOML)."""
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidScenario(f"{path}: {exc}") from None
        return cls.parse(data)

    def with_changes(self, changes: Mapping[str, Any]) -> Scenario:
        """A copy with dotted-key changes applied, e.g. ``{"roles.solvers": 8, "seed": 3}``;
        validated like :meth:`parse`."""
        data = self.model_dump()
        for key, value in changes.items():
            node = data
            *path, last = key.split(".")
            for part in path:
                if not isinstance(node.get(part), dict):
                    raise InvalidScenario(f"no scenario section {key!r}")
                node = node[part]
            if last not in node:
                raise InvalidScenario(f"no scenario field {key!r}")
            node[last] = value
        return Scenario.parse(data)


def _explain(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "scenario"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"

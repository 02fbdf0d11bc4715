"""``axl run``'s market roles: the built-in roles of :mod:`agents.market`, built from the
``[role]`` table of the config, reporting jobs by state for ``axl status``, and resuming after
a restart (``kill -9`` included) from the chain and the node's state:

* the submitter takes the chain as the truth: each job of its config has a distinct spec
  hash; jobs it already escrowed (``JobsPosted`` events from its account) are adopted in their
  chain state instead of being escrowed again, so nothing is paid twice and no escrow is
  stranded (expired ones are refunded, committed ones settled);
* the solver writes each assigned job's spec to its state before training; after a restart it
  re-trains (deterministically) the jobs still assigned to it and commits them, and rebuilds
  the runs of committed or disputed jobs to answer the referee — never committing a job whose
  commit reached the chain.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import trio

from agents.market import (
    BatchPolicy,
    JobAssigned,
    Referee,
    RefereeConfig,
    Solver,
    SolverConfig,
    SolverJob,
    Submitter,
    SubmitterConfig,
    TimeoutPolicy,
    VerifierConfig,
    VerifyPolicy,
)
from axl import Context, InvalidPeerId, PeerId
from compute import InvalidTaskSpec, TaskSpec
from coordination import Role

from .._agent import Agent
from .._decorators import on
from ._catchup import CatchingUpVerifier, CommitmentRequest, JobCommitment, commitment_of
from ._errors import CliError
from ._rolespec import RoleSpec

WEI = 10**18


class RoleTable:
    """Typed reads of the ``[role]`` table; :meth:`finish` rejects keys nobody read."""

    def __init__(self, role: str, table: dict[str, Any]) -> None:
        self.role = role
        self.items = dict(table)

    def _take(self, key: str, kinds: tuple[type, ...], default: Any) -> Any:
        if key not in self.items:
            return default
        value = self.items.pop(key)
        if isinstance(value, bool) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise CliError(f"[role] {key} for the {self.role}: expected {names}, got {value!r}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = float(self._take(key, (int, float), default))
        if value < minimum:
            raise CliError(f"[role] {key} for the {self.role}: at least {minimum}")
        return value

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = int(self._take(key, (int,), default))
        if value < minimum:
            raise CliError(f"[role] {key} for the {self.role}: at least {minimum}")
        return value

    def tokens(self, key: str, default: int) -> int:
        raw = self._take(key, (str, int, float), None)
        if raw is None:
            return default
        try:
            wei = Decimal(str(raw)) * WEI
        except InvalidOperation:
            wei = Decimal("NaN")
        if not wei.is_finite() or wei < 0 or wei != wei.to_integral_value():
            raise CliError(f"[role] {key} for the {self.role}: {raw!r} is not a token amount")
        return int(wei)

    def share_bps(self, key: str, default: int) -> int:
        share = self.number(key, default / 10_000)
        if share > 1:
            raise CliError(f"[role] {key} for the {self.role}: a share between 0 and 1")
        return round(share * 10_000)

    def finish(self) -> None:
        if self.items:
            key = sorted(self.items)[0]
            raise CliError(f"[role] {key}: not a {self.role} setting")


def cli_roles() -> dict[str, RoleSpec]:
    """The role table ``axl run`` uses (see :func:`agents.cli._roles.role_spec`)."""
    return {
        "solver": RoleSpec("solver", Role.SOLVER, _solver),
        "verifier": RoleSpec("verifier", Role.VERIFIER, _verifier),
        "submitter": RoleSpec("submitter", None, _submitter),
        "referee": RoleSpec("referee", Role.REFEREE, _referee),
    }


def _solver(table: dict[str, Any], stake: int | None) -> Agent:
    t = RoleTable("solver", table)
    default = SolverConfig()
    commit_size = t.integer("commit_batch", default.commits.max_size, minimum=1)
    commit_wait = t.number("commit_interval", default.commits.flush_interval)
    settle_size = t.integer("settle_batch", default.settles.max_size, minimum=1)
    settle_wait = t.number("settle_interval", default.settles.flush_interval)
    config = SolverConfig(
        capacity=t.integer("capacity", default.capacity, minimum=1),
        price_per_step=t.tokens("price", default.price_per_step),
        stake=stake if stake is not None else default.stake,
        offer_interval=t.number("offer_interval", default.offer_interval, minimum=0.01),
        commits=BatchPolicy(commit_size, commit_wait),
        settles=BatchPolicy(settle_size, settle_wait),
        poll_interval=t.number("poll_interval", default.poll_interval, minimum=0.01),
        bid_ttl=t.number("bid_ttl", default.bid_ttl),
        dispute_timeout=t.number("dispute_timeout", default.dispute_timeout),
    )
    t.finish()
    return ResumingSolver(config, "solver")


def _verifier(table: dict[str, Any], stake: int | None) -> Agent:
    t = RoleTable("verifier", table)
    default = VerifierConfig()
    referee_text = t._take("referee", (str,), "referee")
    referee: str | PeerId = referee_text
    if referee_text.startswith("12D3"):
        try:
            referee = PeerId.from_string(referee_text)
        except InvalidPeerId as exc:
            raise CliError(f"[role] referee for the verifier: {exc}") from None
    config = VerifierConfig(
        policy=VerifyPolicy(t.share_bps("sampling", 10_000), salt=os.urandom(16)),
        capacity=t.integer("capacity", default.capacity, minimum=1),
        stake=stake if stake is not None else default.stake,
        referee=referee,
        dispute_timeout=t.number("dispute_timeout", default.dispute_timeout),
    )
    t.finish()
    return StatusVerifier(config, "verifier")


def _submitter(table: dict[str, Any], stake: int | None) -> Agent:
    t = RoleTable("submitter", table)
    default = SubmitterConfig()
    timeouts = TimeoutPolicy(
        bid_window=t.number("bid_window", default.timeouts.bid_window, minimum=0.01),
        commit_timeout=t.integer("commit_timeout", default.timeouts.commit_timeout, minimum=1),
        max_attempts=t.integer("max_attempts", default.timeouts.max_attempts, minimum=1),
    )
    jobs = t._take("jobs", (list,), [])
    repeat = t.integer("repeat", 1, minimum=1)
    config = SubmitterConfig(
        payment=t.tokens("payment", default.payment),
        timeouts=timeouts,
        sample_bps=t.share_bps("sampling", default.sample_bps),
        poll_interval=t.number("poll_interval", default.poll_interval, minimum=0.01),
        settle_grace=t.integer("settle_grace", default.settle_grace),
    )
    t.finish()
    return ResumingSubmitter(config, list(job_specs(jobs, repeat)), "submitter")


def job_specs(tables: list[Any], repeat: int) -> Iterator[TaskSpec]:
    """Each ``[[role.jobs]]`` table as a task spec, ``repeat`` times with consecutive seeds
    (so every job has its own spec hash). Raises :class:`CliError` for an invalid spec."""
    for index, table in enumerate(tables):
        if not isinstance(table, dict):
            raise CliError(f"[[role.jobs]] #{index + 1}: a table of task spec fields")
        for copy in range(repeat):
            data = {**table, "seed": int(table.get("seed", 0)) + copy}
            try:
                yield TaskSpec.parse(data)
            except InvalidTaskSpec as exc:
                line = str(exc).splitlines()[0]
                raise CliError(f"[[role.jobs]] #{index + 1}: {line}") from None


def _referee(table: dict[str, Any], stake: int | None) -> Agent:
    t = RoleTable("referee", table)
    default = RefereeConfig()
    config = RefereeConfig(
        query_timeout=t.number("query_timeout", default.query_timeout, minimum=0.01),
        game_timeout=t.number("game_timeout", default.game_timeout, minimum=0.01),
        challenge_timeout=t.number("challenge_timeout", default.challenge_timeout, minimum=0.01),
        poll_interval=t.number("poll_interval", default.poll_interval, minimum=0.01),
        stake=stake if stake is not None else default.stake,
        query_patience=t.number("query_patience", default.query_patience, minimum=0.0),
    )
    t.finish()
    return StatusReferee(config, "referee")


# -- the roles with a status report and restart safety ---------------------------------------


def _count(states: Iterator[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


class ResumingSolver(Solver):
    """:class:`agents.market.Solver` that keeps each accepted job's spec in its state and
    hands them to :meth:`~agents.market.Solver.resume` after a restart."""

    def market_status(self) -> dict[str, Any]:
        def state(job: SolverJob) -> str:
            if job.done:
                return "done"
            if job.disputed_at is not None:
                return "disputed"
            return "committed" if job.commitment is not None or job.trained else "training"

        return {"jobs": _count(state(job) for job in self.jobs.values())}

    @on(CommitmentRequest)
    async def commitment_request(self, message: CommitmentRequest, ctx: Context) -> JobCommitment:
        """A verifier that missed this job's commitment asks for it."""
        return commitment_of(self.jobs.get(message.job_id), message.job_id)

    async def job_assigned(self, message: JobAssigned, ctx: Context) -> None:
        await super().job_assigned(message, ctx)
        job = self.jobs.get(message.job_id)
        if job is not None:  # accepted: remember it before the work starts
            held = dict(self.state.get("assigned", {}))
            held[str(job.job_id)] = message.spec
            self.state["assigned"] = held
            await trio.to_thread.run_sync(self.state.flush)

    async def on_start(self) -> None:
        await super().on_start()
        held: dict[str, str] = dict(self.state.get("assigned", {}))
        live = await self.resume({int(k): TaskSpec.parse(text) for k, text in held.items()})
        self.state["assigned"] = {str(job_id): held[str(job_id)] for job_id in live}


class ResumingSubmitter(Submitter):
    """:class:`agents.market.Submitter` that posts the jobs of its config once, across
    restarts (:meth:`~agents.market.Submitter.resume`)."""

    def __init__(self, config: SubmitterConfig, specs: list[TaskSpec], name: str) -> None:
        super().__init__(config, name)
        self.specs = specs

    def market_status(self) -> dict[str, Any]:
        return {"jobs": _count(ticket.status for ticket in self.tickets)}

    async def on_start(self) -> None:
        await super().on_start()
        await self.resume(self.specs)


class StatusVerifier(CatchingUpVerifier):
    """:class:`agents.market.Verifier` with a status report that catches up on the
    commitments it missed (:class:`CatchingUpVerifier`)."""

    def market_status(self) -> dict[str, Any]:
        counters = self.counters()
        return {
            "jobs": {
                key.removeprefix("market."): value
                for key, value in counters.items()
                if key.startswith("market.")
            }
        }


class StatusReferee(Referee):
    """:class:`agents.market.Referee` with a status report."""

    def market_status(self) -> dict[str, Any]:
        counters = self.counters()
        return {
            "jobs": {
                key.removeprefix("market."): value
                for key, value in counters.items()
                if key.startswith("market.")
            }
        }

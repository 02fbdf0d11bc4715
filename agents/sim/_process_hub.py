"""The coordinator's side of the control channel of ``--processes`` runs: the hub agent.
Workers (:mod:`._process_worker`, local or on other machines) join it with the run's token
and get one share of the agents each; it keeps their latest reports and, at the end, asks
each to stop and collects its final report. Its libp2p host is also the swarm's bootstrap
peer. A join with a wrong token, or a report from a peer that did not join, is refused and
counted (:attr:`Hub.refused`)."""

from __future__ import annotations

import hmac
import json
from collections import Counter
from typing import Any

import trio

from axl import Context, PeerId, PeerUnreachable, RemoteError, RequestTimeout

from .._agent import Agent
from .._decorators import on
from .._errors import UnexpectedReply
from ._process_messages import Assignment, Go, Join, Stop, WorkerReport

STOP_TIMEOUT = 20.0  # seconds a worker has to answer Stop with its final report


def _counts(value: Any) -> Counter[str]:
    """The ``{name: int}`` entries of a report field (anything else is ignored)."""
    if not isinstance(value, dict):
        return Counter()
    return Counter({str(k): v for k, v in value.items() if type(v) is int})


class Hub(Agent):
    """See the module doc. ``plans``: one JSON plan per worker, handed out in join order."""

    def __init__(self, token: str, plans: list[str]) -> None:
        super().__init__("hub")
        self.token = token
        self.plans = plans
        self.workers: dict[PeerId, int] = {}
        self.reports: dict[int, dict[str, Any]] = {}
        self.finals: dict[int, dict[str, Any]] = {}
        self.refused = 0

    @on(Join)
    async def joined(self, message: Join, ctx: Context) -> Assignment:
        if not hmac.compare_digest(message.token.encode(), self.token.encode()):
            self.refused += 1
            raise RemoteError("refused", "wrong token")
        index = self.workers.get(ctx.sender)
        if index is None:
            if len(self.workers) >= len(self.plans):
                self.refused += 1
                raise RemoteError("full", f"all {len(self.plans)} shares are taken")
            index = self.workers[ctx.sender] = len(self.workers)
            self.log.info("worker %d joined from %s (%s)", index, ctx.sender, message.host)
        return Assignment(index=index, plan=self.plans[index])

    @on(WorkerReport)
    async def report(self, message: WorkerReport, ctx: Context) -> None:
        body = self._accept(message, ctx.sender)
        if body is not None:
            self.reports[message.index] = body

    def _accept(self, message: WorkerReport, sender: PeerId) -> dict[str, Any] | None:
        if self.workers.get(sender) != message.index:
            self.refused += 1
            return None
        try:
            body = json.loads(message.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.refused += 1
            return None
        return body

    def ready(self) -> bool:
        """Every share is taken and every worker reported all its agents running."""
        return len(self.reports) == len(self.plans) and all(
            r.get("ready") is True for r in self.reports.values()
        )

    def failed(self) -> list[str]:
        """Agents whose start failed, in any worker."""
        return sorted(str(n) for r in self.reports.values() for n in r.get("failed") or [])

    def frames(self) -> Counter[str]:
        """Frames sent by message type, summed over the workers' latest reports."""
        total: Counter[str] = Counter()
        for index, report in self.reports.items():
            total.update(_counts(self.finals.get(index, report).get("frames")))
        return total

    def totals(self) -> Counter[str]:
        """The workers' runtime counters, summed (final reports where there are)."""
        total: Counter[str] = Counter()
        for index in set(self.reports) | set(self.finals):
            total.update(
                _counts(self.finals.get(index, self.reports.get(index, {})).get("counters"))
            )
        return total

    def spam_sent(self) -> int:
        return sum(
            int(r.get("spam_sent", 0)) if type(r.get("spam_sent")) is int else 0
            for r in ({**self.reports, **self.finals}).values()
        )

    def checked(self) -> dict[str, dict[int, bool]]:
        """Every verifier's re-runs (final reports): job id → reproduced the root."""
        result: dict[str, dict[int, bool]] = {}
        for report in self.finals.values():
            for name, jobs in (report.get("checked") or {}).items():
                if isinstance(jobs, dict):
                    result[str(name)] = {
                        int(j): ok
                        for j, ok in jobs.items()
                        if str(j).isdigit() and type(ok) is bool
                    }
        return result

    async def go(self) -> None:
        """Tell every worker that the run starts now."""
        for peer in self.workers:
            try:
                await self.send(peer, Go())
            except PeerUnreachable as exc:
                self.log.warning("a worker did not hear go: %s", exc)

    async def stop_workers(self) -> None:
        """Ask every worker to stop; keep each final report (a silent one keeps its last)."""
        async with trio.open_nursery() as nursery:
            for peer, index in self.workers.items():
                nursery.start_soon(self._stop_one, peer, index)

    async def _stop_one(self, peer: PeerId, index: int) -> None:
        try:
            reply = await self.request(peer, Stop(), reply=WorkerReport, timeout=STOP_TIMEOUT)
        except (RequestTimeout, PeerUnreachable, RemoteError, UnexpectedReply) as exc:
            self.log.warning("worker %d did not stop cleanly: %s", index, exc)
            return
        body = self._accept(reply, peer)
        if body is not None:
            self.finals[index] = body

"""What a running node reports: the JSON status snapshot (``/status``, ``axl status``) and the
same figures as Prometheus metrics (``/metrics`` on the opt-in metrics port)."""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from .._agent import Agent

logger = logging.getLogger("agents.cli")

_MESSAGE_COUNTERS = ("received", "sent", "published", "requests", "replies")


def connected_peers(transport: Any) -> set[Any]:
    """The peers a transport is connected to (empty for one that does not say)."""
    peers = getattr(transport, "connected_peers", None)
    if callable(peers):
        peers = peers()
    return set(peers or ())


class NodeStatus:
    """The status of one node process: its agent, peers, counters, and (with a chain client)
    balances and stake, re-read from the chain in a worker thread every ``interval`` seconds.

    A role agent may define ``market_status() -> dict`` with ``"jobs"`` (state to count) and
    ``"earnings"`` (wei); they are passed through."""

    def __init__(self, agent: Agent, *, role: str, chain: Any = None) -> None:
        self.agent = agent
        self.role = role
        self.chain = chain
        self.started = time.time()
        self.chain_view: dict[str, Any] = {}
        self.earnings = Earnings()
        self._cursor: Any = None

    def snapshot(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        agent = self.agent
        transport = getattr(getattr(agent, "_bus", None), "transport", None)
        peers = sorted(str(peer) for peer in connected_peers(transport))
        counters = agent.counters()
        rejections = {
            key.split(".", 1)[1]: value
            for key, value in counters.items()
            if key.startswith("rejected.")
        }
        market: dict[str, Any] = {}
        report = getattr(agent, "market_status", None)
        if callable(report):
            try:
                market = dict(report())
            except Exception:  # a broken report must not break the endpoint
                logger.exception("market_status() failed")
        return {
            "name": agent.name,
            "role": self.role,
            "peer_id": str(agent.peer_id),
            "status": agent.status.value,
            "listen": list(getattr(transport, "listen_addrs", [])),
            "uptime_s": round(time.time() - self.started, 3),
            "peers": peers,
            "counters": counters,
            "rejections": rejections,
            "jobs": market.get("jobs", {}),
            "earnings": market.get("earnings", self.earnings.total),
            "earnings_by_kind": self.earnings.by_kind(),
            "chain": dict(self.chain_view),
        }

    def read_chain(self) -> dict[str, Any]:
        """Balances, stake and binding of this node's account (blocking chain reads)."""
        from coordination import Role

        chain = self.chain
        view: dict[str, Any] = {"account": chain.address, "chain_id": chain.chain_id}
        view["eth_wei"] = chain.eth_balance()
        view["tokens_wei"] = chain.balance_of()
        stake = {}
        for role in (Role.SOLVER, Role.VERIFIER):
            position = chain.stake_of(role)
            stake[role.name.lower()] = {
                "active": position.active,
                "unbonding": position.unbonding,
            }
        view["stake_wei"] = stake
        bound = chain.peer_of()
        view["bound_peer"] = str(bound) if bound is not None else None
        if self._cursor is None:
            self._cursor = chain.event_cursor(chain.address_book.block_number)
        self.earnings.add(self._cursor.poll(), chain.address)
        return view

    async def refresh_chain(self, interval: float = 10.0) -> None:
        """Re-read :meth:`read_chain` forever (a failed read is logged once per kind)."""
        if self.chain is None:
            return
        while True:
            try:
                self.chain_view = await trio.to_thread.run_sync(self.read_chain)
            except Exception as exc:
                logger.warning("cannot read the chain for the status: %s", exc)
            await trio.sleep(interval)


class Earnings:
    """What an account earned, folded from the chain's events: settlement payouts
    (``JobSettled.paid`` to it as solver) and slash rewards (``Slashed.reward`` to it)."""

    def __init__(self) -> None:
        self.paid = 0
        self.rewards = 0

    @property
    def total(self) -> int:
        return self.paid + self.rewards

    def add(self, events: Any, address: str) -> None:
        """Fold decoded ``coordination.ChainEvent`` s in (each event counted once)."""
        me = address.lower()
        for event in events:
            if event.name == "JobSettled" and str(event["solver"]).lower() == me:
                self.paid += int(event["paid"])
            elif event.name == "Slashed" and str(event["beneficiary"]).lower() == me:
                self.rewards += int(event["reward"])

    def by_kind(self) -> dict[str, int]:
        return {"paid": self.paid, "rewards": self.rewards}

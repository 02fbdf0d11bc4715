"""The status snapshot and the Prometheus metrics of a node, and earnings folded from chain
events."""

from __future__ import annotations

from typing import Any

import trio

from agents import Agent, AgentRuntime, Context, on
from agents.cli._observe import Earnings, NodeStatus
from agents.cli._prometheus import metrics_registry, metrics_text
from axl import Message
from coordination import ChainEvent

ME = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20


def event(name: str, **args: Any) -> ChainEvent:
    return ChainEvent("JobMarket", name, args, 1, b"\0" * 32, 0)


def test_earnings_count_only_this_account() -> None:
    earnings = Earnings()
    earnings.add(
        [
            event("JobSettled", jobId=1, solver=ME.upper().replace("0X", "0x"), paid=5, fee=1),
            event("JobSettled", jobId=2, solver=OTHER, paid=7, fee=1),
            event("Slashed", account=OTHER, beneficiary=ME, reward=3, burned=3, amount=6, role=0),
            event("JobRefunded", jobId=3, submitter=ME, amount=9),
        ],
        ME,
    )
    assert (earnings.paid, earnings.rewards, earnings.total) == (5, 3, 8)


class Ask(Message, tag="test_cli.ask"):
    n: int


class Market(Agent):
    @on(Ask)
    async def ask(self, msg: Ask, ctx: Context) -> None:
        pass

    def market_status(self) -> dict[str, Any]:
        return {"jobs": {"training": 2, "committed": 1}, "earnings": 42}


class Broken(Agent):
    def market_status(self) -> dict[str, Any]:
        raise RuntimeError("half-built")


async def test_snapshot_and_metrics(autojump_clock: trio.abc.Clock) -> None:
    market, broken, client = Market(), Broken(), Agent("client")
    async with AgentRuntime([market, broken, client]):
        await client.send("market", Ask(n=1))
        await trio.sleep(1)
        status = NodeStatus(market, role="solver")
        snap = status.snapshot()
        assert snap["jobs"] == {"training": 2, "committed": 1}
        assert snap["earnings"] == 42
        assert snap["counters"]["received"] == 1
        assert snap["status"] == "running"
        text = metrics_text(metrics_registry(status)).decode()
        assert 'axl_jobs{state="training"} 2.0' in text
        assert "axl_earnings_wei 42.0" in text
        assert 'axl_messages_total{kind="received"} 1.0' in text
        fallback = NodeStatus(broken, role="x").snapshot()  # a failing report: defaults
        assert (fallback["jobs"], fallback["earnings"]) == ({}, 0)

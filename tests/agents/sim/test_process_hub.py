"""The hub of ``--processes`` runs: a worker joins with the run's token and gets one share; a
wrong token, a peer that did not join, a bad report or one share too many is refused and
counted, never an exception that stops the hub; Stop collects each final report."""

from __future__ import annotations

import json

import pytest
import trio

from agents import Agent, AgentRuntime, on
from agents.sim._process_hub import Hub
from agents.sim._process_messages import Assignment, Join, Stop, WorkerReport
from axl import Context, RemoteError

TOKEN = "ab" * 16


class Client(Agent):
    """Stands in for a worker's link agent."""


async def test_workers_join_report_and_are_refused_when_they_should_be(
    autojump_clock: trio.abc.Clock,
) -> None:
    hub = Hub(TOKEN, ['{"share": 0}', '{"share": 1}'])
    first, second, third, stranger = (Client(n) for n in ("w1", "w2", "w3", "stranger"))
    async with AgentRuntime([hub, first, second, third, stranger]):
        with pytest.raises(RemoteError, match="wrong token"):
            await stranger.request("hub", Join(token="cd" * 16), reply=Assignment)
        one = await first.request("hub", Join(token=TOKEN), reply=Assignment)
        again = await first.request("hub", Join(token=TOKEN), reply=Assignment)
        two = await second.request("hub", Join(token=TOKEN), reply=Assignment)
        assert (one.index, one.plan, again.index, two.index) == (0, '{"share": 0}', 0, 1)
        with pytest.raises(RemoteError, match="taken"):
            await third.request("hub", Join(token=TOKEN), reply=Assignment)

        body = {"frames": {"market.bid": 3, "bad": "x"}, "counters": {"rejected.decode": 2},
                "ready": True, "spam_sent": 4}  # fmt: skip
        await first.send("hub", WorkerReport(index=0, body=json.dumps(body)))
        await second.send("hub", WorkerReport(index=0, body=json.dumps(body)))  # not its index
        await stranger.send("hub", WorkerReport(index=1, body=json.dumps(body)))  # never joined
        await second.send("hub", WorkerReport(index=1, body="[not json"))
        await trio.sleep(1)
        assert hub.refused == 5
        assert not hub.ready()  # worker 1 has not reported yet
        await second.send("hub", WorkerReport(index=1, body=json.dumps({**body, "frames": {}})))
        await trio.sleep(1)
        assert hub.ready()
        assert hub.frames() == {"market.bid": 3}  # a non-count entry is ignored
        assert hub.totals() == {"rejected.decode": 4}
        assert hub.spam_sent() == 8


class Worker(Agent):
    """Answers Stop with a final report of what it checked."""

    @on(Stop)
    async def stop_run(self, message: Stop, ctx: Context) -> WorkerReport:
        body = {"frames": {"market.bid": 5}, "checked": {"verifier0": {"7": False, "x": True}}}
        return WorkerReport(index=0, final=True, body=json.dumps(body))


async def test_stop_collects_the_final_reports(autojump_clock: trio.abc.Clock) -> None:
    hub = Hub(TOKEN, ["{}"])
    worker = Worker("w")
    async with AgentRuntime([hub, worker]):
        await worker.request("hub", Join(token=TOKEN), reply=Assignment)
        await worker.send("hub", WorkerReport(index=0, body=json.dumps({"ready": True})))
        await trio.sleep(1)
        await hub.stop_workers()
    assert hub.frames() == {"market.bid": 5}
    assert hub.checked() == {"verifier0": {7: False}}

"""AgentRuntime: names, identities, dynamic agents, start failures, graceful shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from agents import (
    Agent,
    AgentError,
    AgentRuntime,
    AgentStartError,
    Context,
    State,
    Status,
    UnknownAgent,
    on,
)
from axl import Identity, MemoryNetwork

from .messages import Echo, Hello


class Greeter(Agent):
    @on(Hello)
    async def hello(self, msg: Hello, ctx: Context) -> Echo:
        return Echo(text=f"hello {msg.text}")


class Stopper(Agent):
    def __init__(self, name: str | None = None, *, stall: float = 0.0) -> None:
        super().__init__(name)
        self.stall = stall
        self.events: list[str] = []

    async def on_start(self) -> None:
        self.events.append("start")

    async def on_stop(self) -> None:
        self.events.append("stop")
        await trio.sleep(self.stall)
        self.events.append("stopped")


class Broken(Agent):
    async def on_start(self) -> None:
        raise ConnectionError("no chain")


def test_names_identities_and_peers() -> None:
    runtime = AgentRuntime(seed=42)
    greeter = runtime.add(Greeter())
    other = runtime.add(Greeter(), name="greeter-2")
    assert runtime.names == ["greeter", "greeter-2"]
    assert runtime["greeter-2"] is other
    assert greeter.peer_id == AgentRuntime(seed=42).add(Greeter()).peer_id  # reproducible
    assert greeter.peer_id != AgentRuntime(seed=43).add(Greeter()).peer_id
    assert greeter.peer_id != other.peer_id
    remote = Identity.generate().peer_id
    runtime.add_peer("remote", remote)
    assert runtime.peer("remote") == remote
    assert greeter.peer("greeter-2") == other.peer_id
    with pytest.raises(AgentError, match="taken"):
        runtime.add(Greeter())
    with pytest.raises(AgentError, match="taken"):
        runtime.add_peer("greeter", remote)
    with pytest.raises(AgentError, match="already added"):
        runtime.add(greeter, name="again")
    with pytest.raises(AgentError, match="agent name"):
        runtime.add(Greeter(), name="../escape")
    with pytest.raises(UnknownAgent):
        runtime.peer("nobody")
    with pytest.raises(AgentError, match="either"):
        AgentRuntime(
            network=MemoryNetwork(), transport=lambda ident: MemoryNetwork().connect(ident.peer_id)
        )


async def test_spawn_and_add_while_running(autojump_clock: trio.abc.Clock) -> None:
    async with AgentRuntime([Greeter()]) as runtime:
        client = await runtime.spawn(Stopper("client"))
        assert client.running
        assert await client.request("greeter", Hello(text="a"), reply=Echo) == Echo(text="hello a")
        late = runtime.add(Greeter(), name="late")
        await trio.sleep(0.1)
        assert late.running
        with pytest.raises(AgentStartError, match="ConnectionError: no chain"):
            await runtime.spawn(Broken())
        assert "broken" not in runtime.names
    assert client.events == ["start", "stop", "stopped"]
    assert {agent.status for agent in runtime} == {Status.STOPPED}


async def test_failed_start_stops_agents_already_started(autojump_clock: trio.abc.Clock) -> None:
    first = Stopper("first")
    runtime = AgentRuntime([first, Broken(), Stopper("never")])
    with pytest.raises(AgentStartError) as info:
        await runtime.run()
    assert isinstance(info.value.__cause__, ConnectionError)
    assert first.events == ["start", "stop", "stopped"]
    assert runtime["never"].status is Status.NEW
    assert not runtime.running


async def test_slow_on_stop_is_bounded(autojump_clock: trio.abc.Clock) -> None:
    slow = Stopper("slow", stall=100.0)
    async with AgentRuntime([slow], stop_timeout=2.0):
        pass
    assert slow.events == ["start", "stop"]
    assert slow.counters()["stop_timeouts"] == 1


async def test_outer_cancellation_still_stops_agents_gracefully(
    autojump_clock: trio.abc.Clock,
) -> None:
    agent = Stopper("a")
    runtime = AgentRuntime([agent])
    with trio.move_on_after(5.0):
        await runtime.run()
    assert agent.events == ["start", "stop", "stopped"]


async def test_background_tasks_are_isolated_and_stop_with_the_agent(
    autojump_clock: trio.abc.Clock,
) -> None:
    finished: list[str] = []

    async def fails() -> None:
        raise KeyError("x")

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            finished.append("cancelled")

    agent = Stopper("bg")
    async with AgentRuntime([agent]):
        agent.start_soon(fails)
        agent.start_soon(forever)
        await trio.sleep(1)
        assert agent.running
    assert agent.counters()["task_errors"] == 1
    assert finished == ["cancelled"]


async def test_custom_transport_factory_counters_and_chain(autojump_clock: trio.abc.Clock) -> None:
    network = MemoryNetwork(seed=1)
    runtime = AgentRuntime(transport=lambda identity: network.connect(identity.peer_id))
    chain = object()
    greeter = runtime.add(Greeter(), chain=chain)
    client = runtime.add(Stopper("client"))
    assert greeter.chain is chain and client.chain is None
    async with runtime:
        for i in range(3):
            await client.request("greeter", Hello(text=str(i)))
    assert network.stats.delivered == 6
    counters = runtime.counters()
    assert counters["greeter"]["handled"] == 3
    assert counters["client"]["requests"] == 3
    totals = runtime.totals()
    assert totals["received"] == 6
    assert totals["replies"] == 3
    text = runtime.metrics_text()
    assert "# TYPE axl_agent_handled_total counter\n" in text
    assert 'axl_agent_handled_total{agent="greeter"} 3\n' in text
    assert 'axl_agent_requests_total{agent="client"} 3\n' in text
    assert AgentRuntime().metrics_text() == ""


SERVE_SCRIPT = textwrap.dedent(
    """
    import sys, trio
    from agents import Agent, AgentRuntime, every

    class Worker(Agent):
        async def on_start(self):
            self.state["runs"] = self.state.get("runs", 0) + 1
            print("started", flush=True)

        @every(0.05)
        async def work(self):
            self.state["ticks"] = self.state.get("ticks", 0) + 1

        async def on_stop(self):
            self.state["stopped_cleanly"] = True

    AgentRuntime([Worker()], data_dir=sys.argv[1], flush_interval=None).serve()
    print("exited", flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_agents_gracefully_and_flushes_state(
    tmp_path: Path, signum: signal.Signals
) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    assert process.stdout is not None
    watchdog = threading.Timer(60, process.kill)  # a hung child ends the test, not the suite
    watchdog.daemon = True
    watchdog.start()
    try:
        assert process.stdout.readline().strip() == "started"
        process.send_signal(signum)
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert out.strip() == "exited"
    state = dict(State(tmp_path / "worker" / "state.sqlite"))
    assert state["runs"] == 1
    assert state["stopped_cleanly"] is True


async def test_agent_added_just_before_shutdown_does_not_hang(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):  # the bug this guards against was a hang
        async with AgentRuntime([Greeter()]) as runtime:
            late = runtime.add(Stopper("late"))
            runtime.stop()
    assert late.status is Status.STOPPED
    assert late.events in ([], ["start", "stop", "stopped"])  # it may have got going first


async def test_stop_requested_during_on_start_stops_after_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    class SlowStart(Stopper):
        async def on_start(self) -> None:
            await trio.sleep(5)
            self.events.append("start")

    agent = SlowStart("slow-start")
    async with AgentRuntime() as runtime:
        runtime.add(agent)
        await trio.sleep(1)
        assert agent.status is Status.STARTING
        agent.stop()
        await trio.sleep(10)
        assert agent.status.value == "stopped"
        assert agent.events == ["start", "stop", "stopped"]


async def test_transport_that_cannot_open_is_a_start_error(autojump_clock: trio.abc.Clock) -> None:
    def refuse(identity: Identity) -> Any:
        raise OSError("address already in use")

    runtime = AgentRuntime([Greeter()], transport=refuse)
    with pytest.raises(AgentStartError, match="OSError: address already in use"):
        await runtime.run()
    assert runtime["greeter"].status is Status.STOPPED

"""Handler dispatch, replies, error isolation and bounded concurrency."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from agents import (
    Agent,
    AgentDefinitionError,
    AgentNotRunning,
    AgentRuntime,
    Context,
    UnexpectedReply,
    UnknownAgent,
    every,
    on,
)
from axl import Message, PeerId, RemoteError, RequestTimeout

from .messages import Boom, Echo, Hello, Note, Slow


class Echoer(Agent):
    topics = ("lobby",)

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.seen: list[tuple[str, PeerId, str | None]] = []

    @on(Hello)
    async def hello(self, msg: Hello, ctx: Context) -> Echo:
        self.seen.append((msg.text, ctx.sender, ctx.topic))
        return Echo(text=msg.text.upper())

    @on(Boom)
    async def boom(self, msg: Boom, ctx: Context) -> None:
        if msg.detail == "remote":
            raise RemoteError("refused", "not today")
        raise ValueError(msg.detail)

    @on(Slow)
    async def slow(self, msg: Slow, ctx: Context) -> Echo:
        await trio.sleep(msg.seconds)
        return Echo(text=f"slept {msg.seconds}")


class Client(Agent):
    pass


async def test_request_reply_by_name_and_peer_id(autojump_clock: trio.abc.Clock) -> None:
    echoer, client = Echoer(), Client()
    async with AgentRuntime([echoer, client]) as runtime:
        reply = await client.request("echoer", Hello(text="hi"), reply=Echo)
        assert reply == Echo(text="HI")
        again = await client.request(runtime.peer("echoer"), Hello(text="yo"))
        assert again == Echo(text="YO")
        assert echoer.seen == [("hi", client.peer_id, None), ("yo", client.peer_id, None)]
    assert echoer.counters()["handled"] == 2
    assert client.counters()["requests"] == 2


async def test_send_and_topic_messages_reach_handlers(autojump_clock: trio.abc.Clock) -> None:
    echoer, client = Echoer(), Client()
    async with AgentRuntime([echoer, client]):
        await client.send("echoer", Hello(text="direct"))
        await client.publish("lobby", Hello(text="topic"))
        await trio.sleep(0.1)
    assert sorted(echoer.seen) == [
        ("direct", client.peer_id, None),
        ("topic", client.peer_id, "lobby"),
    ]


async def test_expected_reply_type_is_checked(autojump_clock: trio.abc.Clock) -> None:
    async with AgentRuntime([Echoer(), Client()]) as runtime:
        with pytest.raises(UnexpectedReply, match="expected Hello"):
            await runtime["client"].request("echoer", Hello(text="x"), reply=Hello)


async def test_failing_handler_is_isolated_logged_and_counted(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    echoer, client = Echoer(), Client()
    with caplog.at_level(logging.ERROR, logger="agents"):
        async with AgentRuntime([echoer, client]):
            with pytest.raises(RemoteError) as info:
                await client.request("echoer", Boom(detail="kaput"))
            assert info.value.code == "handler_error"
            assert "ValueError: kaput" in info.value.detail
            with pytest.raises(RemoteError) as refused:
                await client.request("echoer", Boom(detail="remote"))
            assert (refused.value.code, refused.value.detail) == ("refused", "not today")
            # the agent still works
            assert await client.request("echoer", Hello(text="ok")) == Echo(text="OK")
    assert echoer.counters()["handler_errors"] == 2
    records = [r for r in caplog.records if "boom() failed" in r.getMessage()]
    assert len(records) == 1
    record = records[0]
    assert record.__dict__["agent"] == "echoer"
    assert record.__dict__["peer"] == str(echoer.peer_id)
    assert record.__dict__["message_type"] == "test_agents.boom"
    assert len(record.__dict__["message_id"]) == 32
    assert record.exc_info is not None


async def test_slow_handler_does_not_block_others(autojump_clock: trio.abc.Clock) -> None:
    echoer, client = Echoer(), Client()
    async with AgentRuntime([echoer, client]):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.request, "echoer", Slow(seconds=100.0))
            await trio.sleep(0.01)
            start = trio.current_time()
            assert await client.request("echoer", Hello(text="fast")) == Echo(text="FAST")
            assert trio.current_time() - start < 1.0
            nursery.cancel_scope.cancel()


class Narrow(Echoer):
    handler_concurrency = 1
    handler_backlog = 1


async def test_bounded_concurrency_sheds_with_busy_error(autojump_clock: trio.abc.Clock) -> None:
    narrow, client = Narrow(), Client()
    results: list[str] = []

    async def ask() -> None:
        try:
            await client.request("narrow", Slow(seconds=10.0), timeout=60)
            results.append("ok")
        except RemoteError as exc:
            results.append(exc.code)

    async with AgentRuntime([narrow, client]), trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(ask)
    assert sorted(results) == ["busy", "busy", "ok", "ok"]
    assert narrow.counters()["dropped.overloaded"] == 2


async def test_request_timeout_and_unknown_names(autojump_clock: trio.abc.Clock) -> None:
    client = Client()
    async with AgentRuntime([Echoer(), client]):
        with pytest.raises(RequestTimeout):
            await client.request("echoer", Slow(seconds=50.0), timeout=5.0)
        with pytest.raises(UnknownAgent, match="nobody"):
            await client.send("nobody", Hello(text="?"))


async def test_not_running_agent_cannot_send() -> None:
    client = Client()
    with pytest.raises(AgentNotRunning):
        _ = client.peer_id
    AgentRuntime([client])
    with pytest.raises(AgentNotRunning):
        await client.send(client.peer_id, Hello(text="x"))


def test_subclass_inherits_and_overrides_handlers() -> None:
    class Base(Agent):
        @on(Hello)
        async def hello(self, msg: Hello, ctx: Context) -> None: ...

        @every(2.0)
        async def tick(self) -> None: ...

    class Child(Base):
        @on(Note, Echo)
        async def note(self, msg: Message, ctx: Context) -> None: ...

        @every(5.0, first=0.0)
        async def tick(self) -> None: ...

    assert Base._axl_handlers == {Hello: "hello"}
    expected: dict[type[Message], str] = {Hello: "hello", Note: "note", Echo: "note"}
    assert Child._axl_handlers == expected
    assert [(t.name, t.interval, t.first) for t in Child._axl_timers] == [("tick", 5.0, 0.0)]


def test_definition_errors() -> None:
    with pytest.raises(AgentDefinitionError, match="one handler per message type"):

        class Twice(Agent):
            @on(Hello)
            async def a(self, msg: Hello, ctx: Context) -> None: ...

            @on(Hello)
            async def b(self, msg: Hello, ctx: Context) -> None: ...

    with pytest.raises(AgentDefinitionError, match="tuple of names"):

        class BadTopics(Agent):
            topics = "lobby"  # type: ignore[assignment]

    with pytest.raises(AgentDefinitionError, match=r"would replace Agent\.send"):

        class Shadow(Agent):
            @on(Hello)
            async def send(self, msg: Hello, ctx: Context) -> None:  # type: ignore[override]
                ...

    with pytest.raises(AgentDefinitionError, match="positive interval"):
        every(0)
    with pytest.raises(AgentDefinitionError, match="no tag"):

        class Untagged(Message):
            x: int

        on(Untagged)


def test_handler_signatures_are_type_checked(tmp_path: Path) -> None:
    """mypy rejects a handler whose message parameter does not accept the declared type, or
    that returns something other than a message or None."""
    source = tmp_path / "wrong_handlers.py"
    source.write_text(
        textwrap.dedent(
            """
            from agents import Agent, Context, every, on
            from tests.agents.messages import Echo, Hello

            class Wrong(Agent):
                @on(Hello)
                async def hello(self, msg: Echo, ctx: Context) -> None: ...

                @on(Hello)
                async def number(self, msg: Hello, ctx: Context) -> int:
                    return 1

                @every(1.0)
                async def tick(self, extra: int) -> None: ...

            class Right(Agent):
                @on(Hello, Echo)
                async def both(self, msg: Hello | Echo, ctx: Context) -> Echo:
                    return Echo(text="x")
            """
        )
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "MYPYPATH": str(root)},
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [int(line.split(":")[1]) for line in errors] == [6, 9, 13], result.stdout

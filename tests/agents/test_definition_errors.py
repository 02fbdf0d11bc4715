"""Found when tried as a new user would: handler mistakes are rejected when the class is
defined, and a handler that returns a non-Message is a typed error reply, not a crash."""

from __future__ import annotations

import pytest
import trio

from agents import Agent, AgentDefinitionError, AgentRuntime, Context, every, on
from axl import Message, RemoteError

from .messages import Echo, Hello, Note


def test_sync_handler_is_rejected_at_class_creation() -> None:
    with pytest.raises(AgentDefinitionError, match=r"hello\(\) must be declared with async def"):

        class Bad(Agent):
            @on(Hello)  # type: ignore[arg-type]  # a sync handler: the mistake under test
            def hello(self, msg: Hello, ctx: Context) -> None:
                pass


def test_handler_without_ctx_is_rejected() -> None:
    with pytest.raises(AgentDefinitionError, match=r"must take \(self, msg, ctx\)"):

        class Bad(Agent):
            @on(Hello)  # type: ignore[arg-type]
            async def hello(self, msg: Hello) -> None:
                pass


def test_handler_with_an_extra_required_parameter_is_rejected() -> None:
    with pytest.raises(AgentDefinitionError, match=r"must take \(self, msg, ctx\)"):

        class Bad(Agent):
            @on(Hello)  # type: ignore[arg-type]
            async def hello(self, msg: Hello, ctx: Context, extra: int) -> None:
                pass


def test_every_with_a_parameter_is_rejected() -> None:
    with pytest.raises(AgentDefinitionError, match=r"Bad.tick\(self, n\) must take \(self\)"):

        class Bad(Agent):
            @every(1.0)  # type: ignore[arg-type]
            async def tick(self, n: int) -> None:
                pass


def test_sync_every_is_rejected() -> None:
    with pytest.raises(AgentDefinitionError, match="async def"):

        class Bad(Agent):
            @every(1.0)  # type: ignore[arg-type]
            def tick(self) -> None:
                pass


def test_optional_extra_parameters_are_accepted() -> None:
    class Fine(Agent):
        @on(Hello)
        async def hello(self, msg: Hello, ctx: Context, *, extra: int = 0) -> None:
            pass

        @every(1.0)
        async def tick(self, n: int = 1) -> None:
            pass

    assert Fine._axl_handlers[Hello] == "hello"


class DictReplier(Agent):
    @on(Hello)
    async def hello(self, msg: Hello, ctx: Context) -> Echo:
        return {"text": msg.text}  # type: ignore[return-value]

    @on(Note)
    async def note(self, msg: Note, ctx: Context) -> None:
        return {"value": msg.value}  # type: ignore[return-value]


class Untagged(Message):
    text: str


class UntaggedReplier(Agent):
    @on(Hello)
    async def hello(self, msg: Hello, ctx: Context) -> Echo:
        return Untagged(text=msg.text)  # type: ignore[return-value]


class Client(Agent):
    pass


async def test_a_dict_reply_is_a_typed_error_and_the_runtime_survives(
    autojump_clock: trio.abc.Clock,
) -> None:
    replier, client = DictReplier(), Client()
    async with AgentRuntime([replier, client]):
        with pytest.raises(RemoteError) as info:
            await client.request("dictreplier", Hello(text="hi"), timeout=5)
        assert info.value.code == "handler_error"
        assert "returned a dict, not a Message" in info.value.detail
        await client.send("dictreplier", Note(value=1))  # not a request: counted only
        await trio.sleep(1)
        with pytest.raises(RemoteError):  # still running: a second request is answered too
            await client.request("dictreplier", Hello(text="again"), timeout=5)
        assert replier.counters()["handler_errors"] == 3


async def test_an_untagged_reply_is_a_typed_error(autojump_clock: trio.abc.Clock) -> None:
    replier, client = UntaggedReplier(), Client()
    async with AgentRuntime([replier, client]):
        with pytest.raises(RemoteError, match="no tag") as info:
            await client.request("untaggedreplier", Hello(text="hi"), timeout=5)
        assert info.value.code == "handler_error"
        assert replier.counters()["handler_errors"] == 1

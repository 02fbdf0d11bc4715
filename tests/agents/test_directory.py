"""The built-in Directory: advertising, lookups, expiry, capacity."""

from __future__ import annotations

import pytest
import trio

from agents import (
    Advertise,
    Agent,
    AgentRuntime,
    Context,
    Directory,
    FindProviders,
    Providers,
    Registered,
    Withdraw,
    on,
)
from axl import RemoteError

from .messages import Echo, Hello


class Shouter(Agent):
    provides = ("shouting", "echo")
    advertise_interval = 5.0

    @on(Hello)
    async def hello(self, msg: Hello, ctx: Context) -> Echo:
        return Echo(text=msg.text.upper())


class Asker(Agent):
    pass


async def test_providers_are_found_and_used(autojump_clock: trio.abc.Clock) -> None:
    directory, shouter, asker = Directory(), Shouter(), Asker()
    async with AgentRuntime([directory, shouter, Shouter(name="shouter-2"), asker]):
        await trio.sleep(0.1)
        providers = await asker.find("shouting")
        assert {p.name for p in providers} == {"shouter", "shouter-2"}
        assert all(0 < p.expires_in <= 15.0 for p in providers)
        reply = await asker.request(providers[0].peer, Hello(text="hi"), reply=Echo)
        assert reply == Echo(text="HI")
        assert await asker.find("nothing") == []
        assert directory.services() == ["echo", "shouting"]


async def test_entries_expire_unless_renewed(autojump_clock: trio.abc.Clock) -> None:
    directory, shouter, asker = Directory(), Shouter(), Asker()
    async with AgentRuntime([directory, shouter, asker]):
        await trio.sleep(100.0)  # renewed every 5 s, valid 15 s
        assert [p.name for p in await asker.find("echo")] == ["shouter"]
        shouter.stop()
        await trio.sleep(14.0)
        assert [p.name for p in await asker.find("echo")] == ["shouter"]
        await trio.sleep(2.0)
        assert await asker.find("echo") == []
        await trio.sleep(10.0)  # swept
        assert directory.size == 0


async def test_advertise_as_request_withdraw_and_validation(autojump_clock: trio.abc.Clock) -> None:
    directory, asker = Directory(capacity=2), Asker()
    async with AgentRuntime([directory, asker]):
        ack = await asker.request("directory", Advertise(name="me", services=["a", "b"], ttl=60))
        assert ack == Registered(services=["a", "b"], ttl=60)
        with pytest.raises(RemoteError) as full:
            await asker.request("directory", Advertise(name="me", services=["c"]))
        assert full.value.code == "directory_full"
        with pytest.raises(RemoteError) as invalid:
            await asker.request("directory", Advertise(name="me", services=["Bad Name"]))
        assert invalid.value.code == "invalid_service"
        await asker.request("directory", Withdraw(services=["a"]))
        assert directory.services() == ["b"]
        await asker.request("directory", Withdraw())
        assert directory.size == 0
        found = await asker.request("directory", Advertise(name="me", services=["c"]))
        assert isinstance(found, Registered)
        providers = await asker.find("c")
        assert [p.peer for p in providers] == [asker.peer_id]
        limited = await asker.request("directory", FindProviders(service="c", limit=1))
        assert isinstance(limited, Providers) and len(limited.providers) == 1


async def test_the_directory_finds_providers_itself(autojump_clock: trio.abc.Clock) -> None:
    """``find`` from inside the Directory is a request to itself: answered, not dropped."""
    directory, shouter = Directory(), Shouter()
    async with AgentRuntime([directory, shouter]):
        await trio.sleep(0.1)
        with trio.fail_after(5):
            providers = await directory.find("shouting")
        assert [p.name for p in providers] == ["shouter"]

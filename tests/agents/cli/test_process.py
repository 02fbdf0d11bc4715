"""The node process's bootstrap watcher (``agents/cli/_process.py``)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from agents.cli._process import watch_bootstrap


def lonely_agent() -> Any:
    """An agent whose transport has no peer connected."""
    return SimpleNamespace(_bus=SimpleNamespace(transport=SimpleNamespace(connected_peers=set)))


async def test_no_peer_after_the_grace_is_a_warning(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agents.cli")
    with trio.move_on_after(11):
        await watch_bootstrap(lonely_agent(), ["/ip4/127.0.0.1/tcp/1"], 10.0, trio.Event())
    assert ["no bootstrap peer reachable" in r.getMessage() for r in caplog.records] == [True]


async def test_a_stopping_node_that_loses_its_peers_logs_no_warning(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Every node of a swarm stopped at once lost its peers before it was done stopping, and
    each one logged that no bootstrap peer was reachable."""
    caplog.set_level(logging.WARNING, logger="agents.cli")
    stopping = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            watch_bootstrap, lonely_agent(), ["/ip4/127.0.0.1/tcp/1"], 10.0, stopping
        )
        await trio.sleep(5)
        stopping.set()
        with trio.move_on_after(200):
            await trio.sleep_forever()
        nursery.cancel_scope.cancel()
    assert not caplog.records

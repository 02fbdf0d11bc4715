"""Stream events and the swarm's notifees: py-libp2p's fan-out of every stream opened and
closed (a nursery and a task per notifee) is skipped while no notifee does anything with it,
and a notifee that does is still told."""

from __future__ import annotations

from typing import Any

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_swarm import STREAM_EVENTS

from .clusters import eventually

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0xA0 + n]) * 32)


async def test_stream_events_go_only_to_notifees_that_handle_them(monkeypatch: Any) -> None:
    from libp2p.abc import INotifee
    from libp2p.network.swarm import Swarm

    notified: list[str] = []
    fan_out = Swarm._notify

    async def counted(self: Any, method: str, *args: Any) -> None:
        notified.append(method)
        await fan_out(self, method, *args)

    monkeypatch.setattr(Swarm, "_notify", counted)
    async with (
        Libp2pTransport.open(identity(0), config=CONFIG) as a,
        Libp2pTransport.open(identity(1), config=CONFIG) as b,
    ):
        await a.connect(b.listen_addrs[0])
        await a.send(b.local_peer, b"hello")  # a's link opens a stream to b
        assert (await b.receive()).frame == b"hello"
        assert "connected" in notified  # connection events still go out
        assert not set(notified) & set(STREAM_EVENTS), notified  # nobody needed the streams'

        opened: list[Any] = []

        class Watcher(INotifee):
            async def opened_stream(self, network: Any, stream: Any) -> None:
                opened.append(stream)

            async def closed_stream(self, network: Any, stream: Any) -> None:
                pass

            async def connected(self, network: Any, conn: Any) -> None:
                pass

            async def disconnected(self, network: Any, conn: Any) -> None:
                pass

            async def listen(self, network: Any, multiaddr: Any) -> None:
                pass

            async def listen_close(self, network: Any, multiaddr: Any) -> None:
                pass

        assert b._host is not None
        b._host.get_network().register_notifee(Watcher())
        await b.send(a.local_peer, b"back")  # b's link opens a stream to a: b's watcher hears
        assert (await a.receive()).frame == b"back"
        await eventually(lambda: len(opened) >= 1)
        assert "opened_stream" in notified

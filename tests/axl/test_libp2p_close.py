"""Closing a libp2p transport: its port stops accepting and its peers see the close at once.

The host used to be closed from inside the nursery just cancelled, so the close was cancelled
at its first await and never run again: the listener kept accepting connections (and
completing Noise handshakes under the closed node's identity), and connected peers only
noticed when their own timeouts fired."""

from __future__ import annotations

import socket

import trio

from axl import Identity, Libp2pConfig, Libp2pTransport


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0x90 + n]) * 32)


def _port(addr: str) -> int:
    return int(addr.split("/tcp/")[1].split("/")[0])


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return False
        return True


async def test_a_closed_transport_stops_listening() -> None:
    async with Libp2pTransport.open(identity(0)) as node:
        port = _port(node.listen_addrs[0])
        assert _accepts(port)
    assert not _accepts(port)


async def test_peers_see_a_clean_close_at_once() -> None:
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=2.0)
    async with Libp2pTransport.open(identity(1), config=config) as stays:
        async with Libp2pTransport.open(
            identity(2), bootstrap=stays.listen_addrs, config=config
        ) as leaves:
            with trio.fail_after(10):
                while leaves.local_peer not in stays.connected_peers():
                    await trio.sleep(0.02)
        with trio.fail_after(2):  # well before any keep-alive or read timeout
            while leaves.local_peer in stays.connected_peers():
                await trio.sleep(0.02)

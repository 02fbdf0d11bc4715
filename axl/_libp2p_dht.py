"""Peer routing for the libp2p transport: py-libp2p's Kademlia DHT (``libp2p.kad_dht``).

Every node runs the DHT in server mode with peer routing only: no value or provider records,
no random walk. (py-libp2p 0.8.1 speaks ``/ipfs/kad/1.0.0`` whatever its prefix; the
``/axl`` prefix only exempts the DHT from the IPFS checks that demand value and provider
records.)
A peer is put in the routing table when a connection to it opens (all AXL nodes serve the
DHT, so py-libp2p's identify round trip to check that is skipped) and when it queries us.

A lookup (:meth:`Dht.find`) is Kademlia's iterative search: ask the closest known peers
(XOR distance to the target's key) for closer ones, ALPHA at a time, until the target or no
closer peer turns up: O(log n) rounds for n nodes. Addresses learned on the way go into the
peerstore, so the next dial to the target needs no lookup.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from ._identity import PeerId

DHT_PROTOCOL_PREFIX = "/axl"

logger = logging.getLogger("axl.libp2p")


class Dht:
    """The transport's Kademlia peer routing (one per host)."""

    def __init__(self, host: Any) -> None:
        from libp2p.custom_types import TProtocol
        from libp2p.kad_dht import DHTMode, KadDHT

        self._host = host
        self.kad: Any = KadDHT(
            host,
            DHTMode.SERVER,
            enable_random_walk=False,
            protocol_prefix=TProtocol(DHT_PROTOCOL_PREFIX),
            enable_providers=False,
            enable_values=False,
            # py-libp2p caps peers per /24 (IPv4) in a bucket; a swarm on one host or LAN is
            # one subnet, so the cap would keep the table nearly empty.
            max_peers_per_subnet=0,
        )

    def service(self) -> AbstractAsyncContextManager[Any]:
        """Run the DHT service for the duration of the block."""
        from libp2p.tools.anyio_service import background_trio_service

        return background_trio_service(self.kad)

    async def add(self, pid: Any) -> None:
        """Put a connected peer in the routing table (errors are logged, not raised).

        The table holds dialable addresses only: a peer that dialled us is added once its
        listen addresses are known (identify, peer exchange), retried for about 15 s.
        """
        pause = 0.25
        for _ in range(6):
            try:
                if await self.kad.add_peer(pid, skip_server_mode_check=True):
                    return
            except Exception as exc:
                logger.debug("routing table: adding %s failed: %r", pid, exc)
                return
            await trio.sleep(pause)
            pause *= 2

    def table_size(self) -> int:
        """Peers in the routing table."""
        return int(self.kad.routing_table.size())

    async def find(self, peer: PeerId, *, timeout: float) -> list[str] | None:
        """The addresses of ``peer`` found by a network lookup (``None`` if not found).

        Always asks the network, even for a peer already in the peerstore: it is the
        lookup, not the cache, that is measured and tested.
        """
        from libp2p.peer.id import ID

        target = ID(peer.raw)
        with trio.move_on_after(timeout):
            await self.kad.peer_routing.find_closest_peers_network(target.to_bytes())
        try:
            addrs = self._host.get_peerstore().addrs(target)
        except Exception:
            return None
        return [str(addr) for addr in addrs] or None

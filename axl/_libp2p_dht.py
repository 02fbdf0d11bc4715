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
from dataclasses import dataclass
from typing import Any

import trio

from ._errors import TransportClosed
from ._identity import PeerId
from ._libp2p_dht_records import install_dht_caches, query_closest

DHT_PROTOCOL_PREFIX = "/axl"
ALPHA = 3
"""Queries in flight per lookup round (Kademlia's alpha)."""

logger = logging.getLogger("axl.libp2p")


class Dht:
    """The transport's Kademlia peer routing (one per host)."""

    def __init__(self, host: Any) -> None:
        from libp2p.custom_types import TProtocol
        from libp2p.kad_dht import DHTMode, KadDHT

        install_dht_caches()
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

    async def find(self, peer: PeerId, *, timeout: float, nursery: trio.Nursery) -> Lookup:
        """Look ``peer`` up over the network (never only the local peerstore: the lookup is
        what is measured and tested): Kademlia's iterative search, :data:`ALPHA` queries at
        a time, closest first, stopping as soon as an answer names the target.

        The queries run in ``nursery`` (the transport's): a round that ends early, or a
        lookup that times out, stops waiting for the queries still in flight but does not
        cancel them. Each ends by itself within py-libp2p's query timeout, and what it learns
        still goes into the peerstore and the routing table. Cancelled, a query to a peer we
        were not connected to broke the dial off mid-handshake: the work of both ends was
        lost, and the peer logged a failed connection upgrade (ERROR lines in a healthy
        swarm, every 10 s at 40 processes).

        Raises :class:`TransportClosed` when ``nursery`` no longer takes tasks (the transport
        is closing)."""
        from libp2p.kad_dht.utils import sort_peer_ids_by_distance
        from libp2p.peer.id import ID

        target = ID(peer.raw)
        key = target.to_bytes()
        own = self._host.get_id()
        known = set(self.kad.routing_table.find_local_closest_peers(key, 20))
        known |= set(self._host.get_connected_peers())
        known.discard(own)
        queried: set[Any] = set()
        rounds = 0
        found = False
        with trio.move_on_after(timeout):
            while not found:
                batch = [
                    p for p in sort_peer_ids_by_distance(key, list(known)) if p not in queried
                ][:ALPHA]
                if not batch:
                    break
                rounds += 1
                round_ = _Round(len(batch), target)
                for other in batch:
                    queried.add(other)
                    try:
                        nursery.start_soon(_ask, self.kad, other, key, round_)
                    except RuntimeError as exc:  # closed to new arrivals: the host stops
                        raise TransportClosed("the transport closed during a lookup") from exc
                await round_.over.wait()
                learned = list(round_.learned)
                found = target in learned or target in batch
                known.update(p for p in learned if p != own)
        try:
            addrs = [str(addr) for addr in self._host.get_peerstore().addrs(target)]
        except Exception:
            addrs = []
        return Lookup(addrs, found, rounds, len(queried))


class _Round:
    """One round of a lookup: over once every query of it has ended, or as soon as an answer
    names the target (the other queries may still run; what they learn later is not read)."""

    def __init__(self, queries: int, target: Any) -> None:
        self.pending = queries
        self.target = target
        self.learned: list[Any] = []
        self.over = trio.Event()

    def ended(self) -> None:
        """One query of the round ended (answered, failed or timed out)."""
        self.pending -= 1
        if self.pending <= 0 or self.target in self.learned:
            self.over.set()


async def _ask(kad: Any, peer: Any, key: bytes, round_: _Round) -> None:
    """One FIND_NODE query of a round."""
    try:
        await query_closest(kad, peer, key, round_.learned)
    finally:
        round_.ended()


@dataclass(frozen=True)
class Lookup:
    """What a lookup found: the target's addresses now in the peerstore (empty: none),
    whether an answer named the target, the rounds of queries and how many peers it asked."""

    addrs: list[str]
    found: bool
    rounds: int
    queried: int

"""Cheaper FIND_NODE handling in py-libp2p's Kademlia DHT (``libp2p.kad_dht``), same wire.

py-libp2p's DHT does per query, on both sides, work whose answer rarely changes:

* **Our signed peer record.** Every FIND_NODE request and response carries the sender's signed
  peer record; py-libp2p rebuilds the host's address list to check that its cached record is
  current (``env_to_send_in_RPC``) each time. The bytes are reused here for a few seconds,
  as the gossip router does (:mod:`axl._libp2p_gossip`).
* **Records it already checked.** A response names up to 20 closer peers, each with its signed
  record, and py-libp2p verifies every one (an Ed25519 verification and two protobuf parses)
  and hands it to the peerstore, although in a settled swarm they are the records it verified
  on the previous query. A record already verified for the same peer (same bytes, same
  answer) is not verified again for :data:`VERIFIED_TTL` seconds (well under the peerstore's
  2 h for it); a new or changed record goes through py-libp2p's check, and a failed check is
  never remembered.
* **Connection type per closer peer.** A response reports for each peer whether we are
  connected to it; py-libp2p copies the list of connected peers and scans it for each of the
  20 (O(peers) each); here it is one dictionary look-up.

The replacements are installed once per process in place of the module-level names the DHT
modules call (the pattern of :func:`axl._libp2p_gossip._install_record_caches`), before any
host runs; nothing in site-packages changes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

VERIFIED_RECORDS = 4096
"""(our host, peer, record) triples remembered as verified."""
VERIFIED_TTL = 600.0
"""Seconds a verified record is trusted without a new check (the peerstore keeps it 2 h)."""

_installed = False


def install_dht_caches() -> None:
    """Put the cached record and connection-type helpers in py-libp2p's DHT modules
    (idempotent)."""
    global _installed
    if _installed:
        return
    import libp2p.kad_dht.kad_dht as kad_dht
    import libp2p.kad_dht.peer_routing as peer_routing
    from libp2p.kad_dht.utils import maybe_consume_signed_record as consume
    from libp2p.peer.peerstore import env_to_send_in_RPC as make_env

    from ._libp2p_gossip import _cached_record

    cached_env = _cached_record(make_env)
    cached_consume = cached_kad_consume(consume)
    for module in (kad_dht, peer_routing):
        module.env_to_send_in_RPC = cached_env  # type: ignore[attr-defined]
        module.maybe_consume_signed_record = cached_consume  # type: ignore[attr-defined]
    kad_dht.get_connection_type = connection_type
    _installed = True


def cached_kad_consume(consume: Callable[..., bool]) -> Callable[..., bool]:
    """py-libp2p's ``maybe_consume_signed_record`` for DHT messages (a request or response's
    ``senderRecord``, or a closer peer's ``signedRecord``), skipping records it accepted
    before for the same host and peer."""
    from libp2p.kad_dht.pb.kademlia_pb2 import Message

    verified: OrderedDict[tuple[bytes, bytes, bytes], float] = OrderedDict()

    def maybe_consume_signed_record(msg: Any, host: Any, peer_id: Any = None) -> bool:
        if not isinstance(msg, Message):  # a closer peer (Message.Peer)
            if not msg.HasField("signedRecord"):
                return True
            record: bytes = msg.signedRecord
            expected: bytes = msg.id
        else:
            if not msg.HasField("senderRecord"):
                return True
            record = msg.senderRecord
            expected = peer_id.to_bytes() if peer_id is not None else b""
        key = (host.get_id().to_bytes(), expected, record)
        now = time.monotonic()
        expiry = verified.get(key)
        if expiry is not None and expiry > now:
            return True
        ok = consume(msg, host, peer_id)
        if ok:
            verified[key] = now + VERIFIED_TTL
            verified.move_to_end(key)
            while len(verified) > VERIFIED_RECORDS:
                verified.popitem(last=False)
        return ok

    return maybe_consume_signed_record


def connection_type(host: Any, peer_id: Any) -> Any:
    """py-libp2p's ``get_connection_type`` with one dictionary look-up for "connected"."""
    from libp2p.kad_dht.pb.kademlia_pb2 import Message

    try:
        if peer_id in host.get_network().connections:
            return Message.ConnectionType.CONNECTED
        if host.get_peerstore().addrs(peer_id):
            return Message.ConnectionType.CAN_CONNECT
        return Message.ConnectionType.NOT_CONNECTED
    except Exception:
        return Message.ConnectionType.NOT_CONNECTED

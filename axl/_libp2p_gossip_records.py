"""Caches for py-libp2p's signed peer records on the gossip path: our own record's bytes
reused for :data:`RECORD_TTL` seconds (py-libp2p signed a fresh record for every RPC it
sent), and a (peer, record) pair verified once for :data:`VERIFIED_TTL` seconds (py-libp2p
verified the record of every RPC received). Installed over the module names py-libp2p's
pubsub modules call; failures are never cached."""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

RECORD_TTL = 5.0
"""Seconds our own signed peer record's bytes are reused before py-libp2p is asked again."""
VERIFIED_RECORDS = 4096
"""(peer, record) pairs remembered as verified."""
VERIFIED_TTL = 600.0


def install_record_caches() -> None:
    """Put the caches in place of the names py-libp2p's pubsub modules call (idempotent)."""
    import libp2p.pubsub.floodsub as floodsub
    import libp2p.pubsub.gossipsub as gossipsub
    import libp2p.pubsub.pubsub as pubsub

    modules = (pubsub, gossipsub, floodsub)
    if getattr(pubsub, "_axl_record_caches", False):
        return
    from libp2p.peer.peerstore import env_to_send_in_RPC as make_env
    from libp2p.pubsub.utils import maybe_consume_signed_record as consume

    cached_env = cached_record(make_env)
    consume_cached = cached_consume(consume)
    for module in modules:
        module.env_to_send_in_RPC = cached_env  # type: ignore[attr-defined]
        module.maybe_consume_signed_record = consume_cached  # type: ignore[attr-defined]
    pubsub._axl_record_caches = True  # type: ignore[attr-defined]


def cached_record(make: Callable[[Any], tuple[bytes, bool]]) -> Callable[[Any], Any]:
    """``make`` (py-libp2p's ``env_to_send_in_RPC``) with its answer reused per host for
    :data:`RECORD_TTL` seconds."""
    cache: weakref.WeakKeyDictionary[Any, tuple[float, bytes]] = weakref.WeakKeyDictionary()

    def env_to_send_in_RPC(host: Any) -> tuple[bytes, bool]:
        now = time.monotonic()
        hit = cache.get(host)
        if hit is not None and hit[0] > now:
            return hit[1], False
        data, created = make(host)
        cache[host] = (now + RECORD_TTL, data)
        return data, created

    return env_to_send_in_RPC


class RecordVerdicts:
    """Signed peer records py-libp2p accepted, by key, each with the sequence number the
    peerstore stored for it: a verdict counts for :data:`VERIFIED_TTL` seconds, and only while
    the peerstore still holds that very record (a newer one from a restarted peer, or none,
    sends the next check to py-libp2p again). At most :data:`VERIFIED_RECORDS`, oldest out."""

    def __init__(self) -> None:
        self._verified: OrderedDict[Any, tuple[float, int]] = OrderedDict()

    def cached(self, key: Any, records: Any, peer: Any) -> bool:
        """Whether ``key``'s record was accepted and ``records`` (the peerstore's record map)
        still holds it for ``peer``."""
        hit = self._verified.get(key)
        if hit is None or hit[0] <= time.monotonic():
            return False
        stored = records.get(peer)
        return stored is not None and bool(stored.seq == hit[1])

    def check(self, key: Any, records: Any, peer: Any, consume: Callable[[], bool]) -> bool:
        """True from the cache while :meth:`cached`; else ``consume()`` (py-libp2p's check)
        decides, and an acceptance is remembered."""
        if self.cached(key, records, peer):
            return True
        ok = consume()
        if ok:
            self.remember(key, records, peer)
        return ok

    def remember(self, key: Any, records: Any, peer: Any) -> None:
        """Note that py-libp2p accepted ``key``'s record (as the peerstore now holds it)."""
        stored = records.get(peer)
        if stored is None:
            return
        verified = self._verified
        verified[key] = (time.monotonic() + VERIFIED_TTL, stored.seq)
        verified.move_to_end(key)
        while len(verified) > VERIFIED_RECORDS:
            verified.popitem(last=False)


def cached_consume(consume: Callable[[Any, Any, Any], bool]) -> Callable[[Any, Any, Any], bool]:
    """``consume`` (py-libp2p's ``maybe_consume_signed_record``) skipped for a (host, peer,
    record) it accepted in the last :data:`VERIFIED_TTL` seconds while the peerstore still
    holds that very record (same sequence number); otherwise py-libp2p decides, so a record
    older than the stored one is refused as before and one the peerstore dropped is stored
    again. Refusals are not kept."""
    verdicts = RecordVerdicts()

    def maybe_consume_signed_record(msg: Any, host: Any, peer_id: Any) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        records = getattr(host.get_peerstore(), "peer_record_map", None)  # py-libp2p's store
        if records is None:
            return consume(msg, host, peer_id)  # nothing to compare a cached record with
        key = (host.get_id().to_bytes() + peer_id.to_bytes(), msg.senderRecord)
        return verdicts.check(key, records, peer_id, lambda: consume(msg, host, peer_id))

    return maybe_consume_signed_record

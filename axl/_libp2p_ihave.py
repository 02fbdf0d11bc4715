"""The IHAVE check, for a whole announcement at once: which of its message ids we have not
seen.

Every heartbeat a node announces the ids of its recent messages (IHAVE) to a few peers
outside its mesh, a quarter of them when there are many: at 40 nodes each one receives
about 9 IHAVEs of ~65 ids a second, ~15 ids per message it delivers. py-libp2p checks each
id on its own: it decodes it from the wire (``safe_bytes_from_hex``: an ASCII decode that
raises and is caught for every binary id), then asks the seen-messages cache (which takes
its thread lock and reads the clock per id). :func:`unseen_ids` gives the same answer, and
refreshes the same cache entries, with one lock and one clock read per announcement; a
binary id (ours: SHA-256 digests) is taken as it is without the raised exception, and
anything ASCII still goes through py-libp2p's decoding, so hex ids of other peers and
malformed ones are treated exactly as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def unseen_ids(seen: Any, wire_ids: Sequence[str | bytes]) -> list[bytes]:
    """The ids in ``wire_ids`` (an IHAVE's ``messageIDs``) that ``seen`` (py-libp2p's
    ``LastSeenCache`` of seen messages) does not hold, in order; malformed ids are left out.
    Each id found has its expiry refreshed, as ``LastSeenCache.has`` does."""
    ids = [wire_id for wire_id in wire_ids if type(wire_id) is bytes and not wire_id.isascii()]
    if len(ids) != len(wire_ids):  # some ids are ASCII (hex, or malformed): decode them all
        ids = _decoded(wire_ids)
    if not ids:
        return []
    cache = seen.cache
    with seen.lock:
        unseen = [mid for mid in ids if mid not in cache]
        if len(unseen) < len(ids):
            expiry = int(time.time()) + seen.ttl
            if unseen:
                missing = set(unseen)
                cache.update((mid, expiry) for mid in ids if mid not in missing)
            else:
                cache.update(dict.fromkeys(ids, expiry))
    return unseen


def _decoded(wire_ids: Sequence[str | bytes]) -> list[bytes]:
    """Every id as py-libp2p decodes it (``safe_bytes_from_hex``; an opaque binary id as it
    is), malformed ones left out."""
    from libp2p.pubsub.utils import safe_bytes_from_hex  # only here: rare, and a call

    ids: list[bytes] = []
    for wire_id in wire_ids:
        if type(wire_id) is bytes and not wire_id.isascii():
            ids.append(wire_id)
            continue
        decoded = safe_bytes_from_hex(wire_id)
        if decoded is not None:
            ids.append(decoded)
    return ids

"""Signed address announcements and GossipSub message ids (sans-IO).

The transport runs GossipSub without py-libp2p's per-message signatures (see docs/libp2p.md,
"Gossip signing"): every topic frame is an AXL envelope the bus verifies anyway. Two things
relied on the libp2p signature and are covered here instead:

* **Address announcements** on the peer-exchange topic carry the announcer's own Ed25519
  signature over its peer id, a timestamp and the addresses. An unsigned, forged, stale or
  re-attributed announcement is refused (a typed outcome, counted by the caller), so nobody
  can plant addresses under another peer's id.
* **When to announce** (:class:`AnnounceSchedule`): often while a node starts, then rarely;
  meeting a newcomer makes a starting node announce soon, not a settled one (every
  announcement reaches every node of the swarm).
* **Message ids** bind the content: ``sha256(from ‖ seqno ‖ data)``. With py-libp2p's default
  (``from ‖ seqno``) an unsigned message could claim a victim's id and a seqno it will use
  next, so the victim's real message would be dropped as already seen.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from ._identity import Identity, PeerId, verify_signature

_DOMAIN = b"axl/peer-announce/1\x00"
_SIG_BYTES = 64
MAX_AGE = 600.0
"""Announcements older than this (or this far in the future) are refused, seconds."""

Refused = Literal["malformed", "bad_signature", "stale"]


class AnnounceSchedule:
    """When a node announces its addresses (sans-IO).

    **Start phase**: pauses of ``first`` s doubling up to ``interval`` (0.5, 1, 2, 4, 8, 15 s:
    six announcements in the first 30 s), and within it an announcement soon after meeting a
    new peer, so that a forming swarm fills its address books fast. **Settled**: one every
    ``settled`` s, a refresh well within the addresses' lifetime in peerstores, and meeting a
    new peer causes none. A newcomer learns the settled nodes from its bootstrap peer's list
    (and the DHT), and they learn it from the newcomer's own start-phase announcements.
    (Every node used to re-announce to the whole swarm whenever it met a newcomer: n nodes,
    n announcements reaching n nodes each, for every join or restart. In steady state a
    swarm of n nodes announcing every 15 s delivered n / 15 announcements a second to each
    node, gossip copies on top.)
    """

    def __init__(self, interval: float, settled: float, first: float = 0.5) -> None:
        if not 0 < interval <= settled:
            raise ValueError("need 0 < interval <= settled")
        self._interval = interval
        self._settled = settled
        self._pause = min(first, interval)
        self.starting = True
        """Whether the current pause belongs to the start phase (new peers hasten its end)."""

    def next_pause(self) -> float:
        """The pause before the next announcement; call once per announcement."""
        pause = self._pause
        self.starting = pause <= self._interval
        self._pause = min(2 * pause, self._interval) if pause < self._interval else self._settled
        return pause


def message_id(msg: Any) -> bytes:
    """GossipSub message id bound to the content (see the module docstring):
    ``sha256(len ‖ from ‖ len ‖ seqno ‖ len ‖ data)``, lengths 4 bytes big-endian. Computed
    for every gossip copy a node receives, so in one hash call."""
    origin, seqno, data = msg.from_id, msg.seqno, msg.data
    length = _LENGTH.pack
    return hashlib.sha256(
        b"".join((length(len(origin)), origin, length(len(seqno)), seqno, length(len(data)), data))
    ).digest()


_LENGTH = struct.Struct(">I")


_last: list[Any] = [None, b""]


def memo_message_id(msg: Any) -> bytes:
    """:func:`message_id`, remembered for the last message object asked about: py-libp2p asks
    for one message's id four times (seen check, seen mark, forward, cache) in a row. The
    memo holds that object, so its identity cannot be reused by another one meanwhile; the
    id's inputs (``from``, ``seqno``, ``data``) are set before a message is handed on and
    never changed afterwards."""
    if msg is _last[0]:
        return _last[1]  # type: ignore[no-any-return]
    mid = message_id(msg)
    _last[0], _last[1] = msg, mid
    return mid


def sign_announcement(identity: Identity, addrs: Sequence[str], now: float | None = None) -> bytes:
    """The announcement payload: signature, then ``<unix ms>`` and one address per line."""
    stamp = int((time.time() if now is None else now) * 1000)
    body = "\n".join([str(stamp), *addrs]).encode()
    return identity.sign(_DOMAIN + identity.peer_id.raw + body) + body


class Announcement(NamedTuple):
    """An announcement that verified: when it was signed (unix seconds) and the addresses."""

    stamp: float
    addrs: list[str]


class AnnouncementLedger:
    """The newest announcement stamp accepted per peer (sans-IO, bounded).

    A receiver replaces a peer's addresses with those of its newest announcement (a node
    restarted on a new port is then dialled there, not at the dead port first), so an older
    announcement arriving later, a delayed gossip copy or a replay by anybody, must not roll
    them back: :meth:`accept` says no to any stamp not newer than the last one accepted.
    At most ``capacity`` peers are remembered (the least recently announced are forgotten:
    a forgotten peer's next announcement is accepted, as on first sight)."""

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._newest: dict[PeerId, float] = {}

    def accept(self, peer: PeerId, stamp: float) -> bool:
        """Record ``stamp`` for ``peer`` if it is newer than the last accepted one."""
        last = self._newest.get(peer)
        if last is not None and stamp <= last:
            return False
        self._newest.pop(peer, None)  # re-insert: the dict's order is the recency
        self._newest[peer] = stamp
        if len(self._newest) > self._capacity:
            self._newest.pop(next(iter(self._newest)))
        return True

    def __len__(self) -> int:
        return len(self._newest)


def read_announcement(
    origin: PeerId, payload: bytes, now: float | None = None
) -> Announcement | Refused:
    """What ``origin`` signed in ``payload`` (its stamp and addresses), or why it is refused."""
    if len(payload) <= _SIG_BYTES:
        return "malformed"
    signature, body = payload[:_SIG_BYTES], payload[_SIG_BYTES:]
    if not verify_signature(origin, signature, _DOMAIN + origin.raw + body):
        return "bad_signature"
    lines = body.decode("utf-8", "replace").splitlines()
    try:
        stamp = int(lines[0]) / 1000
    except (IndexError, ValueError):
        return "malformed"
    current = time.time() if now is None else now
    if abs(current - stamp) > MAX_AGE:
        return "stale"
    return Announcement(stamp, lines[1:])


class HearsayLedger:
    """Peers whose addresses we hold only from hearsay (announcements, peer lists) and that
    never held a connection with us, oldest first (sans-IO, bounded).

    py-libp2p's peerstore keeps 1,000 peers and, when full, evicts the oldest entries with
    addresses first: identities are free to make and their announcements verify, so a flood
    of them would evict the addresses of the peers a node actually talks to. Here hearsay is
    capped on its own: learning one more beyond ``capacity`` returns the oldest, whose
    addresses the caller forgets. A peer that connects is proven (remembered, bounded) and is
    never hearsay again."""

    def __init__(self, capacity: int = 512, proven_capacity: int = 4096) -> None:
        if capacity < 1 or proven_capacity < 1:
            raise ValueError("capacities must be >= 1")
        self._capacity = capacity
        self._proven_capacity = proven_capacity
        self._hearsay: dict[PeerId, None] = {}
        self._proven: dict[PeerId, None] = {}

    def learned(self, peer: PeerId) -> PeerId | None:
        """``peer``'s addresses came by hearsay: the peer to forget now, if any."""
        if peer in self._proven:
            return None
        self._hearsay.pop(peer, None)  # re-insert: the dict's order is the recency
        self._hearsay[peer] = None
        if len(self._hearsay) > self._capacity:
            oldest = next(iter(self._hearsay))
            del self._hearsay[oldest]
            return oldest
        return None

    def connected(self, peer: PeerId) -> None:
        """``peer`` held a connection with us (Noise proved its id): proven from now on."""
        self._hearsay.pop(peer, None)
        self._proven.pop(peer, None)
        self._proven[peer] = None
        if len(self._proven) > self._proven_capacity:
            del self._proven[next(iter(self._proven))]

    def __len__(self) -> int:
        return len(self._hearsay)

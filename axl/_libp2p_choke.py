"""Choking: a mesh peer whose copies of an origin's messages arrive second is asked to stop
sending them (sans-IO state and wire codec; the router is ``axl/_libp2p_gossip.py``).

GossipSub floods each message over a mesh of degree D, so a node receives about D copies
of every message and all but the first are wasted work on both ends (a write, a Noise
message and a parse each). Plumtree (Leitão et al., 2007) keeps the flood's reach with one
copy per node: a node that receives a *duplicate* from a peer tells that peer to stop
pushing eagerly, so the links that delivered first form a spanning tree; the links it chokes
stay lazy and carry IHAVE gossip, through which the tree is repaired.

Here the tree is kept per ``(topic, origin)``, the libp2p ``from`` of the message:

* **A duplicate** from a peer we have not choked for the key (or choked more than
  ``resend_after`` ago and still sending: it forgot, or the order was lost) makes us send it
  CHOKE for the key. A peer only ever chokes its own deliveries, so a lying peer starves
  nobody but itself.
* **A first copy** makes its sender the key's *parent*; if we had choked it (it outran the
  tree, e.g. while chokes were in flight) we UNCHOKE it. So the peer that delivered the
  latest message is never choked: a node cannot choke itself off an origin.
* **The tree missed a message** (its first copy came as the answer to our IWANT, after IHAVE
  gossip told us of it and it did not arrive within a grace period): we UNCHOKE the key on
  every mesh peer and let it flood for a while, longer each time it happens again (a parent
  that withholds messages costs one late message per key and period, not one per
  message); then its duplicates choke again.
* **The parent left** (disconnected or pruned us): we UNCHOKE the key on every mesh peer,
  the next message floods, and its duplicates choke again.
* Only peers that said in their hello RPC that they speak this are choked (a stock
  GossipSub peer would ignore CHOKE and be sent it again and again).

The state is bounded: keys we track as a receiver (``max_keys``, oldest forgotten first; a
forgotten key costs duplicates, or an IHAVE repair if its parent leaves) and keys a peer may
choke on us
(``max_keys_per_peer``; further CHOKEs are ignored and counted).

Wire: a ``ControlMessage`` field that stock GossipSub does not define (:data:`CHOKE_FIELD`,
repeated :data:`AxlChoke`), which every protobuf parser keeps as an unknown field and every
other implementation ignores::

    message AxlChoke { string topic = 1; repeated bytes choke = 2; repeated bytes unchoke = 3;
                       bool hello = 4; }
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._errors import DecodeError

CHOKE_FIELD = 0x61786C
"""The ``ControlMessage`` field number of :data:`AxlChoke` entries ("axl" in ASCII)."""
MAX_ENTRIES = 1024
"""Most :data:`AxlChoke` entries one RPC may carry. (Senders merge their orders into one
entry per topic, but the writer coalesces queued RPCs, so one RPC may carry many.)"""
MAX_ORIGINS = 1024
"""Most origins one entry may choke and unchoke together."""
MAX_RPC_ORIGINS = 16384
"""Most origins all the entries of one RPC may name together."""
MAX_ORIGIN_BYTES = 64
MAX_TOPIC_BYTES = 1024

Key = tuple[str, bytes]
"""``(topic, origin)``: what a CHOKE applies to."""
Peer = TypeVar("Peer", bound=Hashable)


class ChokeDecodeError(DecodeError):
    """A malformed or oversized choke field."""


@dataclass
class ChokeBook(Generic[Peer]):
    """Who we choked and who choked us. Pure bookkeeping: the router sends what it returns."""

    resend_after: float = 2.0
    """A peer still sending duplicates this long after our CHOKE is sent it again."""
    max_keys: int = 4096
    max_keys_per_peer: int = 1024
    flood_after_repair: float = 2.0
    """After the tree missed a message of a key, its duplicates choke nobody for this long;
    a key missed again within twice its period floods twice as long, up to
    ``flood_after_repair_max``. So a parent that withholds messages, again and again, soon
    costs one late message per key and ``flood_after_repair_max``, while an honest tree
    that missed once is back after a couple of seconds."""
    flood_after_repair_max: float = 120.0
    parents: dict[Key, Peer] = field(default_factory=dict)
    """Per key, the peer that delivered its latest message first (insertion order = age)."""
    choking: dict[Key, dict[Peer, float]] = field(default_factory=dict)
    """Per key, the peers we sent CHOKE and when."""
    choked_by: dict[Peer, set[Key]] = field(default_factory=dict)
    """Per peer, the keys it asked us not to push."""
    flooding: dict[Key, tuple[float, float]] = field(default_factory=dict)
    """Keys whose tree missed a message lately: until when they flood, and for how long."""

    # -- as a receiver ------------------------------------------------------------------------

    def first_copy(
        self, peer: Peer, key: Key, *, repaired: bool, now: float = 0.0
    ) -> tuple[list[Peer], bool]:
        """``peer`` delivered the first copy of a message for ``key``; ``repaired``: it was
        the answer to our IWANT (at ``now``). Returns the peers to UNCHOKE for the key and
        whether every mesh peer is to be unchoked as well (the tree missed the message: the
        key then floods for ``flood_after_repair``)."""
        if repaired:
            self.parents.pop(key, None)
            flooding = self.flooding
            last = flooding.pop(key, None)
            period = self.flood_after_repair
            if last is not None and now < last[0] + last[1]:  # again within two periods
                period = min(2 * last[1], self.flood_after_repair_max)
            if len(flooding) >= self.max_keys:
                del flooding[next(iter(flooding))]
            flooding[key] = (now + period, period)
            return list(self.choking.pop(key, {})), True
        parents = self.parents
        if parents.pop(key, None) is None and len(parents) >= self.max_keys:
            oldest = next(iter(parents))
            del parents[oldest]
            self.choking.pop(oldest, None)
        parents[key] = peer
        choked = self.choking.get(key)
        if choked is not None and choked.pop(peer, None) is not None:
            return [peer], False
        return [], False

    def duplicate(self, peer: Peer, key: Key, now: float) -> bool:
        """``peer`` sent a copy we already had: whether to send it CHOKE for ``key``."""
        flood = self.flooding.get(key)
        if flood is not None and now < flood[0]:
            return False  # the tree missed a message lately: flood
        choked = self.choking.get(key)
        if choked is None:
            if len(self.choking) >= self.max_keys:
                return False  # more keys than we track: the duplicates go on, nothing breaks
            choked = self.choking[key] = {}
        sent = choked.get(peer)
        if sent is not None and now - sent < self.resend_after:
            return False
        choked[peer] = now
        return True

    def parent_lost(self, peer: Peer, topic: str) -> dict[Key, list[Peer]]:
        """``peer`` left our mesh for ``topic`` (or disconnected): the keys whose tree ran
        through it, each with the peers we had choked for it. Every mesh peer is to be
        unchoked for them (their bookkeeping is cleared)."""
        lost = [key for key, parent in self.parents.items() if parent == peer and key[0] == topic]
        out: dict[Key, list[Peer]] = {}
        for key in lost:
            del self.parents[key]
            out[key] = list(self.choking.pop(key, {}))
        return out

    # -- as a sender --------------------------------------------------------------------------

    def apply(
        self, peer: Peer, topic: str, choke: Iterable[bytes], unchoke: Iterable[bytes]
    ) -> int:
        """``peer``'s CHOKE and UNCHOKE orders for ``topic``; returns how many CHOKEs were
        ignored (past ``max_keys_per_peer``)."""
        keys = self.choked_by.get(peer)
        if keys is None:
            keys = self.choked_by[peer] = set()
        for origin in unchoke:
            keys.discard((topic, origin))
        ignored = 0
        for origin in choke:
            if len(keys) >= self.max_keys_per_peer and (topic, origin) not in keys:
                ignored += 1
            else:
                keys.add((topic, origin))
        if not keys:
            del self.choked_by[peer]
        return ignored

    def skips(self, peer: Peer, key: Key) -> bool:
        """Whether ``peer`` asked us not to push messages of ``key``."""
        keys = self.choked_by.get(peer)
        return keys is not None and key in keys

    def forget(self, peer: Peer) -> None:
        """``peer`` disconnected: its orders go (a new connection starts unchoked both ways);
        the keys it was the parent of are for :meth:`parent_lost`."""
        self.choked_by.pop(peer, None)
        for choked in self.choking.values():
            choked.pop(peer, None)


# -- wire -------------------------------------------------------------------------------------


def _choke_class() -> Any:
    global _AXL_CHOKE
    if _AXL_CHOKE is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        proto = descriptor_pb2.FileDescriptorProto(
            name="axl/choke.proto", package="axl.gossip", syntax="proto3"
        )
        message = proto.message_type.add(name="AxlChoke")
        kinds = descriptor_pb2.FieldDescriptorProto
        for number, name, kind, label in (
            (1, "topic", kinds.TYPE_STRING, kinds.LABEL_OPTIONAL),
            (2, "choke", kinds.TYPE_BYTES, kinds.LABEL_REPEATED),
            (3, "unchoke", kinds.TYPE_BYTES, kinds.LABEL_REPEATED),
            (4, "hello", kinds.TYPE_BOOL, kinds.LABEL_OPTIONAL),
        ):
            message.field.add(name=name, number=number, type=kind, label=label)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        descriptor = pool.FindMessageTypeByName("axl.gossip.AxlChoke")
        _AXL_CHOKE = message_factory.GetMessageClass(descriptor)
    return _AXL_CHOKE


_AXL_CHOKE: Any = None


@dataclass(frozen=True)
class ChokeOrder:
    """One decoded entry: the sender's CHOKE / UNCHOKE origins for a topic, or its hello."""

    topic: str = ""
    choke: tuple[bytes, ...] = ()
    unchoke: tuple[bytes, ...] = ()
    hello: bool = False


def merge_orders(orders: Iterable[ChokeOrder]) -> list[ChokeOrder]:
    """``orders`` as few entries as say the same: per topic, each origin's latest order
    (CHOKE or UNCHOKE), at most :data:`MAX_ORIGINS` origins an entry, UNCHOKEs first; one
    hello if any order was one."""
    latest: dict[str, dict[bytes, bool]] = {}
    hello = False
    for order in orders:
        hello = hello or order.hello
        if order.choke or order.unchoke:
            by_origin = latest.setdefault(order.topic, {})
            for origin in order.unchoke:
                by_origin.pop(origin, None)
                by_origin[origin] = False
            for origin in order.choke:
                by_origin.pop(origin, None)
                by_origin[origin] = True
    merged = [ChokeOrder(hello=True)] if hello else []
    for topic, by_origin in latest.items():
        unchoke = [origin for origin, choked in by_origin.items() if not choked]
        choke = [origin for origin, choked in by_origin.items() if choked]
        for start in range(0, len(unchoke), MAX_ORIGINS):
            merged.append(ChokeOrder(topic, unchoke=tuple(unchoke[start : start + MAX_ORIGINS])))
        for start in range(0, len(choke), MAX_ORIGINS):
            merged.append(ChokeOrder(topic, choke=tuple(choke[start : start + MAX_ORIGINS])))
    return merged


def control_bytes(orders: Iterable[ChokeOrder]) -> bytes:
    """An RPC's serialized ``control`` field (field 3) holding ``orders``: merged into an RPC
    (``MergeFromString``) it travels as an unknown field of the control message."""
    from libp2p.utils.varint import encode_uvarint

    cls = _choke_class()
    inner = bytearray()
    tag = encode_uvarint(CHOKE_FIELD << 3 | 2)
    for order in orders:
        body = cls(
            topic=order.topic, choke=order.choke, unchoke=order.unchoke, hello=order.hello
        ).SerializeToString()
        inner += tag + encode_uvarint(len(body)) + body
    return b"\x1a" + encode_uvarint(len(inner)) + bytes(inner)


def read_orders(control: Any) -> Iterator[ChokeOrder]:
    """The choke entries of a received ``ControlMessage``; :class:`ChokeDecodeError` for a
    malformed or oversized one (nothing of the field is to be applied then)."""
    from google.protobuf.message import DecodeError as ProtobufDecodeError
    from google.protobuf.unknown_fields import UnknownFieldSet

    unknown_fields: Any = UnknownFieldSet(control)  # iterable; its stub says otherwise
    found = [f for f in unknown_fields if f.field_number == CHOKE_FIELD]
    if len(found) > MAX_ENTRIES:
        raise ChokeDecodeError(f"{len(found)} choke entries in one RPC (at most {MAX_ENTRIES})")
    cls = _choke_class()
    orders = []
    named = 0
    for unknown in found:
        if unknown.wire_type != 2:
            raise ChokeDecodeError("a choke entry that is not length-delimited")
        entry = cls()
        try:
            entry.ParseFromString(unknown.data)
        except (ProtobufDecodeError, ValueError) as exc:
            raise ChokeDecodeError(f"malformed choke entry: {exc}") from exc
        choke, unchoke = tuple(entry.choke), tuple(entry.unchoke)
        if len(choke) + len(unchoke) > MAX_ORIGINS:
            raise ChokeDecodeError(f"more than {MAX_ORIGINS} origins in one choke entry")
        named += len(choke) + len(unchoke)
        if named > MAX_RPC_ORIGINS:
            raise ChokeDecodeError(f"more than {MAX_RPC_ORIGINS} origins in one RPC")
        if len(entry.topic.encode()) > MAX_TOPIC_BYTES or any(
            len(origin) > MAX_ORIGIN_BYTES for origin in choke + unchoke
        ):
            raise ChokeDecodeError("an oversized topic or origin in a choke entry")
        orders.append(ChokeOrder(entry.topic, choke, unchoke, entry.hello))
    return iter(orders)

"""The router's side of choking (``axl/_libp2p_choke.py`` holds the bookkeeping and the wire
codec): a mixin of the transport's GossipSub (``axl/_libp2p_gossip.py``) that chokes the
senders of duplicates, unchokes on a lost parent or a message the tree missed, sends and
applies the orders, and asks late for the ids an IHAVE names (the grace a message gets to
arrive down the tree). Peers are py-libp2p ``ID`` objects; libp2p is imported lazily.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._libp2p_choke import (
    ChokeBook,
    ChokeDecodeError,
    ChokeOrder,
    control_bytes,
    merge_orders,
    read_orders,
)

if TYPE_CHECKING:
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

ORDERS_KEPT = 64
"""Most choke entries (up to 1,024 origins each) that wait per peer for room in its queue."""
IWANTS_KEPT = 4096
"""Recent message ids we asked for (IWANT): a first copy among them means the tree missed it."""


class ChokingRouter:
    """Choking for a GossipSub router (list it before ``GossipSub`` among the bases, and call
    :meth:`_init_choking` from ``__init__``)."""

    # What the GossipSub this is mixed into provides:
    pubsub: Any
    mesh: dict[str, set[ID]]
    mcache: Any

    def _init_choking(self, choke: bool, iwant_grace: float) -> None:
        self.chokes: ChokeBook[ID] | None = ChokeBook() if choke else None
        """Who we choked and who choked us (None: choking off)."""
        self.choke_speakers: set[ID] = set()
        """Peers whose hello said they speak choking: the only ones we choke."""
        self.pending_orders: dict[ID, list[ChokeOrder]] = {}
        """Choke orders that met a full queue, by peer (sent at the next heartbeat)."""
        self.announced: dict[ID, float] = {}
        """When we last answered a peer's UNCHOKE with IHAVE (:meth:`_announce_recent`)."""
        self.iwanted: dict[bytes, None] = {}
        """The latest :data:`IWANTS_KEPT` message ids we asked for."""
        self.iwant_grace = iwant_grace
        """With choking, how long an IHAVE's unseen ids get to arrive down the tree before
        we ask for them (Plumtree's timer): a message still on its way is not a miss."""
        self.deferred_iwants: deque[tuple[float, ID, list[bytes]]] = deque()
        """IHAVEs' unseen ids waiting out ``iwant_grace``: (when due, from whom, ids)."""

    if TYPE_CHECKING:  # the router's own, at run time

        def _count(self, name: str) -> None: ...
        def drop_forward(self, peer_id: ID, msg_id: bytes) -> None: ...
        def send_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, priority: bool = False) -> None: ...
        async def emit_iwant(self, msg_ids: Sequence[bytes], to_peer: ID) -> None: ...

    def remember_iwanted(self, ids: list[bytes]) -> None:
        """Note ids we ask for: their first copy, when it comes, is a repair of the tree."""
        iwanted = self.iwanted
        for mid in ids:
            iwanted[mid] = None
        while len(iwanted) > IWANTS_KEPT:
            del iwanted[next(iter(iwanted))]

    async def _iwant_due(self) -> None:
        """IWANT the deferred ids whose grace is over and that have not arrived (run at
        every IHAVE and every heartbeat)."""
        deferred = self.deferred_iwants
        now = time.monotonic()
        pubsub = self.pubsub
        while deferred and deferred[0][0] <= now and pubsub is not None:
            _, sender_peer_id, wanted = deferred.popleft()
            if sender_peer_id not in pubsub.peers:
                continue
            seen = pubsub.seen_messages
            missing = [mid for mid in wanted if not seen.has(mid)]
            if not missing:
                continue
            self.remember_iwanted(missing)
            await self.emit_iwant(missing, sender_peer_id)

    def on_duplicate(self, peer_id: ID, msg: rpc_pb2.Message, msg_id: bytes) -> None:
        """``peer_id`` sent a copy of a message we had: drop our queued forward of it to
        that peer (:meth:`drop_forward`) and choke the peer for the message's origin."""
        self.drop_forward(peer_id, msg_id)
        chokes = self.chokes
        if chokes is None or peer_id not in self.choke_speakers:
            return
        topics = msg.topicIDs
        if len(topics) != 1:
            return
        topic = topics[0]
        if chokes.duplicate(peer_id, (topic, msg.from_id), time.monotonic()):
            self._count("gossip.chokes_sent")
            self._send_orders(peer_id, [ChokeOrder(topic, choke=(msg.from_id,))])

    def _first_copy(
        self, chokes: ChokeBook[ID], peer_id: ID, key: tuple[str, bytes], msg_id: bytes
    ) -> None:
        repaired = self.iwanted.pop(msg_id, 0) is None
        now = time.monotonic() if repaired else 0.0
        unchoke, everyone = chokes.first_copy(peer_id, key, repaired=repaired, now=now)
        if everyone:
            self._count("gossip.choke_repairs")
            self._unchoke({key: unchoke})
        elif unchoke:
            self._count("gossip.unchokes_sent")
            self._send_orders(unchoke[0], [ChokeOrder(key[0], unchoke=(key[1],))])

    def _unchoke(self, keys: dict[tuple[str, bytes], list[ID]]) -> None:
        """UNCHOKE each key on every mesh peer of its topic that speaks choking and on the
        peers listed with it: the next message floods, its duplicates choke again."""
        per_peer: dict[ID, dict[str, list[bytes]]] = {}
        speakers = self.choke_speakers
        for (topic, origin), listed in keys.items():
            for peer_id in {*listed, *self.mesh.get(topic, ())}:
                if peer_id in speakers:
                    per_peer.setdefault(peer_id, {}).setdefault(topic, []).append(origin)
        for peer_id, topics in per_peer.items():
            self._count("gossip.unchokes_sent")
            self._send_orders(
                peer_id, [ChokeOrder(topic, unchoke=tuple(o)) for topic, o in topics.items()]
            )

    def _send_orders(self, peer_id: ID, orders: list[ChokeOrder]) -> None:
        """Queue choke orders for ``peer_id`` ahead of its messages. A full queue (a slow
        peer) keeps them for the next heartbeat instead of dropping them: a lost UNCHOKE
        would leave the peer skipping us while we count on it as a parent. (A lost CHOKE
        only costs duplicates until it is sent again.) Waiting and new orders are merged
        (:func:`merge_orders`); at most :data:`ORDERS_KEPT` entries wait per peer."""
        pubsub = self.pubsub
        queue = pubsub.peer_queues.get(peer_id) if pubsub is not None else None
        if queue is None:
            return  # not (or no longer) connected: a new connection starts unchoked
        orders = merge_orders(self.pending_orders.pop(peer_id, []) + orders)
        if not orders:
            return
        from libp2p.pubsub.pb import rpc_pb2

        rpc = rpc_pb2.RPC()
        rpc.MergeFromString(control_bytes(orders))
        if not queue.push(rpc, priority=True):
            self._count("gossip.orders_deferred")
            self.pending_orders[peer_id] = orders[:ORDERS_KEPT]  # UNCHOKEs come first

    def _flush_orders(self) -> None:
        """Send the orders that waited for a full queue (every heartbeat)."""
        for peer_id in list(self.pending_orders):
            self._send_orders(peer_id, [])

    async def handle_rpc(self, rpc: rpc_pb2.RPC, sender_peer_id: ID) -> None:
        """py-libp2p's control handling, after the choke orders the RPC carries (a
        malformed choke field is counted, ``gossip.refused_choke``, and ignored)."""
        self.take_orders(rpc.control, sender_peer_id)
        parent: Any = super()
        await parent.handle_rpc(rpc, sender_peer_id)

    def take_orders(self, control: rpc_pb2.ControlMessage, sender_peer_id: ID) -> None:
        """Apply the choke orders (and choke hello) of a received control message."""
        chokes = self.chokes
        if chokes is None:
            return
        try:
            orders = list(read_orders(control))
        except ChokeDecodeError:
            self._count("gossip.refused_choke")
            return
        unchoked: dict[str, set[bytes]] = {}
        for order in orders:
            if order.hello:
                self.choke_speakers.add(sender_peer_id)
            if order.choke or order.unchoke:
                ignored = chokes.apply(sender_peer_id, order.topic, order.choke, order.unchoke)
                if ignored:
                    self._count("gossip.chokes_ignored")
            if order.unchoke:
                unchoked.setdefault(order.topic, set()).update(order.unchoke)
        if unchoked:
            self._announce_recent(sender_peer_id, unchoked)

    def _announce_recent(self, peer_id: ID, unchoked: dict[str, set[bytes]]) -> None:
        """``peer_id`` unchoked these origins (by topic): its tree broke, so it may have
        missed messages we did not push to it. Tell it (IHAVE) the ids of those origins'
        messages in our gossip window; it asks for the ones it lacks. At most once a
        second per peer (an UNCHOKE costs its sender nothing; this costs us a walk of the
        window), so a flood of them is answered by the heartbeat's gossip instead."""
        now = time.monotonic()
        if now - self.announced.get(peer_id, -math.inf) < 1.0:
            return
        self.announced[peer_id] = now
        mcache = self.mcache
        ids: dict[str, list[bytes]] = {}
        for entries in mcache.history[: mcache.window_size]:
            for entry in entries:
                msg = mcache.msgs.get(entry.mid)
                if msg is None:
                    continue
                for topic in entry.topics:
                    if msg.from_id in unchoked.get(topic, ()):
                        ids.setdefault(topic, []).append(entry.mid)
        if ids:
            from libp2p.pubsub.pb import rpc_pb2

            self._count("gossip.unchoke_ihaves")
            ihaves = [rpc_pb2.ControlIHave(topicID=t, messageIDs=m) for t, m in ids.items()]
            self.send_rpc(peer_id, rpc_pb2.RPC(control=rpc_pb2.ControlMessage(ihave=ihaves)))

    async def handle_prune(self, prune_msg: rpc_pb2.ControlPrune, sender_peer_id: ID) -> None:
        parent: Any = super()
        await parent.handle_prune(prune_msg, sender_peer_id)
        if self.chokes is not None:
            lost = self.chokes.parent_lost(sender_peer_id, prune_msg.topicID)
            if lost:
                self._unchoke(lost)

    def remove_peer(self, peer_id: ID) -> None:
        parent: Any = super()
        parent.remove_peer(peer_id)
        chokes = self.chokes
        if chokes is None:
            return
        self.choke_speakers.discard(peer_id)
        self.announced.pop(peer_id, None)
        self.pending_orders.pop(peer_id, None)
        chokes.forget(peer_id)
        for topic in list(self.mesh):
            lost = chokes.parent_lost(peer_id, topic)
            if lost:
                self._unchoke(lost)

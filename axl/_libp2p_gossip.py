"""GossipSub as the libp2p transport runs it: py-libp2p 0.8.1's router minus the behaviours
that made a swarm of a few dozen processes collapse (see docs/libp2p.md, "A real swarm").

* **No replays to (re)subscribing peers.** py-libp2p hands a peer whose subscription it learns
  every message of its cache window (``send_recent_messages``), and flushes up to 100 messages
  per peer that it queued while that peer was connected but not yet subscribed
  (``_pending_messages``, 30 s by default). A restarted agent was sent 700 to 1,000 old messages,
  one batch per neighbour, that queued ahead of fresh ones. Here both are off: a subscriber
  gets what is published once its subscription is known, which is what the bus admits anyway
  (nothing published before it joined; see ``axl/_bus.py``).
* **IDONTWANT only for large messages**, as go-libp2p does (1 KiB): for a small message the
  control RPC costs as much as the duplicate it prevents, and py-libp2p sent one to every mesh
  peer for every message.
* **One message id throughout.** The pubsub uses the content-bound id of
  :func:`axl._libp2p_announce.message_id`; py-libp2p's message cache keys messages by
  ``from ‖ seqno`` regardless, so the ids it advertised in IHAVE never matched the seen cache
  and every IHAVE drew an IWANT and a resend of messages already delivered. The cache here
  uses the same id. Its equivocation check ("same from and seqno, other data": the first
  copy wins, later ones are not forwarded) is off: gossip is unsigned, anyone can claim
  both, and it would let a forger suppress a victim's real message.
* **The signed peer record is sent once per stream** (in the hello RPC that opens it), not
  on every RPC: ~205 bytes less per RPC. Dropped RPCs (a full per-peer queue: a slow peer)
  are counted in the transport's stats, ``gossip.dropped_<reason>``.
* **The signed peer record is built and checked once, not per RPC.** py-libp2p attaches the
  host's signed peer record to every RPC it sends and verifies the one on every RPC it
  receives (an Ed25519 verification and two protobuf parses, duplicates included). The record
  bytes are cached per host for a few seconds, and a record already verified for a peer is not
  verified again (same bytes, same answer); anything new goes through py-libp2p's check.
* **Choking** (``axl/_libp2p_choke.py``): a mesh peer whose copies of an origin's messages
  arrive second is asked to stop pushing them, so each message travels a tree of first
  arrivals instead of every mesh link; IHAVE gossip and a lost parent unchoke again.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._libp2p_gossip_choke import ChokingRouter

if TYPE_CHECKING:
    from libp2p.pubsub.pb import rpc_pb2

IDONTWANT_MIN_BYTES = 1024
"""Messages smaller than this get no IDONTWANT (go-libp2p's threshold)."""
FORWARDS_KEPT = 512
"""Recent forwards whose queued copies a duplicate from their peer can still cancel."""
DEFERRED_KEPT = 1024
"""Most IHAVEs whose unseen ids wait out the grace at once (more are not asked for)."""


def gossipsub_class() -> type[Any]:
    """The GossipSub router class to instantiate (built lazily: libp2p imports slowly)."""
    global _GOSSIPSUB
    if _GOSSIPSUB is None:
        _GOSSIPSUB = _build_class()
        from ._libp2p_gossip_records import install_record_caches

        install_record_caches()
    return _GOSSIPSUB


_GOSSIPSUB: type[Any] | None = None


def _build_class() -> type[Any]:
    from libp2p.custom_types import MessageID
    from libp2p.peer.id import ID
    from libp2p.pubsub.exceptions import NoPubsubAttached
    from libp2p.pubsub.floodsub import PROTOCOL_ID as FLOODSUB
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.mcache import CacheEntry, MessageCache
    from libp2p.pubsub.pb import rpc_pb2

    from ._libp2p_announce import memo_message_id
    from ._libp2p_ihave import unseen_ids

    class AxlMessageCache(MessageCache):
        """The message cache keyed by the content-bound message id (py-libp2p keys it by
        ``from ‖ seqno`` whatever id the pubsub uses)."""

        def put(self, msg: rpc_pb2.Message, mid: bytes | None = None) -> None:
            if mid is None:
                mid = memo_message_id(msg)
            if mid not in self.msgs:
                self.msgs[mid] = msg
                self.history[0].append(CacheEntry(mid, msg.topicIDs))

    class AxlGossipSub(ChokingRouter, GossipSub):
        """GossipSub without replays or queued messages for new subscribers, with IDONTWANT
        for large messages only, and one message id throughout."""

        def __init__(
            self,
            *args: Any,
            gossip_lazy: int = 6,
            gossip_factor: float = 0.25,
            choke: bool = True,
            iwant_grace: float = 0.0,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self._init_choking(choke, iwant_grace)
            self.mcache = AxlMessageCache(self.mcache.window_size, self.mcache.history_size)
            self.gossip_lazy = gossip_lazy
            self.gossip_factor = gossip_factor
            self.forwards: dict[bytes, rpc_pb2.RPC] = {}
            """The RPC each recent message was forwarded in, by message id (the latest
            :data:`FORWARDS_KEPT`): what :meth:`drop_forward` looks for in a peer's queue."""

        def mesh_heartbeat(self) -> tuple[defaultdict[ID, list[str]], defaultdict[ID, list[str]]]:
            """Graft peers into a mesh below D_low, as py-libp2p does; never prune one above
            D_high. py-libp2p's degree pruning sends PRUNE with a 60 s backoff; with
            symmetric meshes each link survives only if both ends keep it, so a swarm whose
            meshes formed above D_high (every node grafts D peers at join: 2D on average)
            pruned most links at once and then could graft no one for a minute: 16 fully
            connected hosts delivered 42 % of their messages (docs/libp2p.md). A mesh is
            bounded instead by refusing GRAFTs past D_high (:meth:`handle_graft`)."""
            to_graft: defaultdict[ID, list[str]] = defaultdict(list)
            pubsub = self.pubsub
            if pubsub is None:
                raise NoPubsubAttached
            for topic, mesh in self.mesh.items():
                if topic not in pubsub.peer_topics or len(mesh) >= self.degree_low:
                    continue
                for peer in self._get_in_topic_gossipsub_peers_from_minus(
                    topic, self.degree - len(mesh), mesh, True
                ):
                    mesh.add(peer)
                    self._notify_mesh_peer_added(peer, topic)
                    to_graft[peer].append(topic)
            return to_graft, defaultdict(list)

        async def handle_graft(self, graft_msg: rpc_pb2.ControlGraft, sender_peer_id: ID) -> None:
            """py-libp2p's GRAFT handling, refusing (PRUNE) a peer that would grow a mesh
            already at D_high, as go-libp2p does: the mesh stays bounded without the
            heartbeat pruning links it has (see :meth:`mesh_heartbeat`); the refused peer
            grafts another one. Counted ``gossip.graft_refused_full``."""
            topic = graft_msg.topicID
            mesh = self.mesh.get(topic)
            if (
                mesh is not None
                and sender_peer_id not in mesh
                and len(mesh) >= self.degree_high
                and sender_peer_id not in self.direct_peers
            ):
                self._count("gossip.graft_refused_full")
                await self.emit_prune(topic, sender_peer_id, self.do_px, False)
                return
            await super().handle_graft(graft_msg, sender_peer_id)

        async def handle_ihave(self, ihave_msg: rpc_pb2.ControlIHave, sender_peer_id: ID) -> None:
            """py-libp2p's IHAVE handling (its rate limit, then an IWANT for the unseen ids),
            the ids checked at once (:func:`axl._libp2p_ihave.unseen_ids`)."""
            if not self._check_ihave_rate_limit(sender_peer_id, ihave_msg.topicID):
                self._count("gossip.ihave_rate_limited")  # py-libp2p logged a warning
                return
            if self.pubsub is None:
                raise NoPubsubAttached
            wanted = unseen_ids(self.pubsub.seen_messages, ihave_msg.messageIDs)
            if self.chokes is not None and self.iwant_grace > 0:
                if wanted and len(self.deferred_iwants) < DEFERRED_KEPT:
                    due = time.monotonic() + self.iwant_grace
                    self.deferred_iwants.append((due, sender_peer_id, wanted))
                    self._count("gossip.iwant_deferred")
                await self._iwant_due()
            elif wanted:
                if self.chokes is not None:
                    self.remember_iwanted(wanted)
                await self.emit_iwant([MessageID(mid) for mid in wanted], sender_peer_id)

        async def _maintain_mesh_quality(self, topic: str) -> None:
            # py-libp2p swaps its lowest-scored mesh peer for a better one every heartbeat
            # (a PRUNE with a 60 s backoff each time; not in the GossipSub spec): off. This
            # is the heartbeat's one await per topic: the deferred IWANTs that are due go,
            # and the choke orders that waited for a full queue.
            await self._iwant_due()
            self._flush_orders()

        def _get_adaptive_gossip_peers_count(self, topic: str, total_peers: int) -> int:
            # py-libp2p's formula with adaptive gossip off, its D_lazy (6) configurable
            return max(self.gossip_lazy, int(total_peers * self.gossip_factor))

        def drop_forward(self, peer_id: ID, msg_id: bytes) -> None:
            """``peer_id`` sent us the message ``msg_id``: it has it, so our forward of it to
            that peer, if still queued, is dropped (counted ``gossip.forward_dropped``) -- an
            IDONTWANT that costs nothing to send. The id is bound to the content, so only a
            peer holding the very message can cancel its own copy, nobody else's."""
            rpc = self.forwards.get(msg_id)
            if rpc is None or self.pubsub is None:
                return
            queue = self.pubsub.peer_queues.get(peer_id)
            if queue is None or not len(queue):
                return
            waiting = getattr(getattr(queue, "_queue", None), "_non_priority", None)
            if waiting is None:
                return  # py-libp2p changed its queue: keep the copy
            for index, item in enumerate(waiting):
                if item is rpc:
                    del waiting[index]
                    self._count("gossip.forward_dropped")
                    return

        def gossip_heartbeat(self) -> defaultdict[ID, dict[str, list[bytes]]]:
            """The heartbeat's IHAVE targets: py-libp2p's choice (``gossip_lazy`` or
            ``gossip_factor`` of the topic's non-mesh peers, at random) without its filter
            on GRAFT backoff. A backoff is about grafting; py-libp2p left a peer out of
            gossip for its whole backoff (60 s), so a bootstrap node that refused many GRAFTs
            at start-up heard almost no IHAVE for a minute, and choking relies on IHAVE to
            repair a tree (go-libp2p gossips to peers in backoff)."""
            pubsub = self.pubsub
            if pubsub is None:
                raise NoPubsubAttached
            out: defaultdict[ID, dict[str, list[bytes]]] = defaultdict(dict)
            topics = [*self.mesh.items()]
            topics += [(t, peers) for t, peers in self.fanout.items() if t not in self.mesh]
            for topic, current in topics:
                if topic not in pubsub.peer_topics:
                    continue
                msg_ids = self.mcache.window(topic)
                if not msg_ids:
                    continue
                total = len(pubsub.peer_topics[topic]) - len(current)
                count = self._get_adaptive_gossip_peers_count(topic, total)
                for peer in self._get_in_topic_gossipsub_peers_from_minus(topic, count, current):
                    out[peer][topic] = list(msg_ids)
            return out

        def _check_equivocation(self, msg: rpc_pb2.Message) -> bool:
            return True  # "same from and seqno, other data": anyone can claim both unsigned

        async def send_recent_messages(self, peer_id: ID, topic: str) -> None:
            return  # never re-send the cache window: only messages published from now on

        def _prune_pending_messages(self, peer_id: ID) -> None:
            # Called before each append: at most the one latest message is ever held.
            self._pending_messages.pop(peer_id, None)

        async def flush_pending_messages(self, peer_id: ID) -> None:
            self._pending_messages.pop(peer_id, None)  # published before it subscribed

        async def publish(self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message) -> None:
            """Forward a validated message: py-libp2p's ``GossipSub.publish`` minus the parts
            that are off here or wasted work per message: spam protection and equivocation
            (off), the signed peer record (sent once per stream), the queue for peers whose
            subscription is not known yet (an O(peers) walk per message, and its entries were
            discarded anyway: see ``flush_pending_messages``), and the per-message delivery
            timestamps that only adaptive gossip (off) reads and trims, which grew without
            bound otherwise. The two steps that await (an IDONTWANT for a large message, an
            IHAVE to topic observers) come first; the rest is :meth:`forward`."""
            pubsub = self.pubsub
            if pubsub is None:
                return
            msg_id = pubsub.get_message_id(pubsub_msg)
            topics = pubsub_msg.topicIDs
            if len(pubsub_msg.data) >= IDONTWANT_MIN_BYTES:
                await self._emit_idontwant_for_message(msg_id, topics)
            await self._notify_observers(topics, msg_id)
            self.forward(msg_forwarder, pubsub_msg, msg_id)

        def forwards_at_once(self, msg: rpc_pb2.Message) -> bool:
            """Whether :meth:`publish` would not await for ``msg``: no IDONTWANT to emit
            (a small message) and no observer of its topics to tell."""
            if len(msg.data) >= IDONTWANT_MIN_BYTES:  # publish emits an IDONTWANT for it
                return False
            observers = getattr(self.topic_observation, "_observers", None)
            if observers is None:
                return False  # py-libp2p changed: take the awaiting path
            return not any(observers.get(topic) for topic in msg.topicIDs)

        def forward(
            self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message, msg_id: bytes | None = None
        ) -> None:
            """The part of :meth:`publish` that needs no await: cache the message and queue
            one shared RPC carrying it for every peer py-libp2p would send it to (``msg_id``:
            the message's id when the caller has it)."""
            pubsub = self.pubsub
            if pubsub is None:
                return
            if msg_id is None:
                msg_id = pubsub.get_message_id(pubsub_msg)
            mcache: Any = self.mcache  # an AxlMessageCache
            mcache.put(pubsub_msg, msg_id)
            topics = pubsub_msg.topicIDs
            chokes = self.chokes
            key: tuple[str, bytes] | None = None
            if chokes is not None and len(topics) == 1:
                key = (topics[0], pubsub_msg.from_id)
                if msg_forwarder != pubsub.my_id:
                    self._first_copy(chokes, msg_forwarder, key, msg_id)
            peers = self._get_peers_to_send(
                topics, msg_forwarder=msg_forwarder, origin=ID(pubsub_msg.from_id), msg_id=msg_id
            )
            rpc = rpc_pb2.RPC(publish=[pubsub_msg])
            forwards = self.forwards
            forwards[msg_id] = rpc
            if len(forwards) > FORWARDS_KEPT:
                del forwards[next(iter(forwards))]
            scorer = self.scorer
            if scorer is not None and _always_passes(scorer.params.publish_threshold) and topics:
                scorer = None  # allow_publish is True for every score
            connected = pubsub.peers
            for peer_id in peers:
                if peer_id not in connected:
                    continue
                if scorer is not None and not scorer.allow_publish(peer_id, list(topics)):
                    continue
                if key is not None and chokes is not None and chokes.skips(peer_id, key):
                    self._count("gossip.choked_skips")
                    continue
                self.send_rpc(peer_id, rpc)
            now = int(time.time())
            for topic in topics:
                self.time_since_last_publish[topic] = now

        def _get_peers_to_send(
            self,
            topic_ids: Iterable[str],
            msg_forwarder: ID,
            origin: ID,
            msg_id: bytes | None = None,
        ) -> Iterator[ID]:
            """py-libp2p's choice of peers to forward to, the same peers, minus two walks
            per message that decide nothing in an AXL swarm: the floodsub peers (a walk over
            every peer on the topic, hashing each peer id twice) when no peer speaks floodsub,
            and the score gate on mesh peers (two score computations per peer) when its
            thresholds are -inf, which every score passes. Lazy, like the original: the
            state is read as the caller iterates."""
            pubsub = self.pubsub
            if pubsub is None:
                raise NoPubsubAttached
            scorer = self.scorer
            if (
                scorer is not None
                and _always_passes(scorer.params.gossip_threshold)
                and _always_passes(scorer.params.graylist_threshold)
            ):
                scorer = None  # allow_gossip is True and is_graylisted False for every score
            any_floodsub = FLOODSUB in self.peer_protocol.values()
            send_to: set[ID] = set()
            for topic in topic_ids:
                if topic not in pubsub.peer_topics:
                    continue
                send_to.update(self.direct_peers)
                if any_floodsub:
                    send_to.update(
                        peer
                        for peer in pubsub.peer_topics[topic]
                        if peer in self.peer_protocol and self.peer_protocol[peer] == FLOODSUB
                    )
                if topic in self.mesh:
                    gossipsub_peers: set[ID] = self.mesh[topic]
                else:  # publishing to a topic we did not join: fanout peers, as py-libp2p
                    fanout_peers: set[ID] = self.fanout.get(topic, set())
                    fanout_size = len(fanout_peers)
                    if topic not in self.fanout or fanout_size < self.degree:
                        fanout_peers.update(
                            self._get_in_topic_gossipsub_peers_from_minus(
                                topic, self.degree - fanout_size, fanout_peers
                            )
                        )
                    self.fanout[topic] = fanout_peers
                    gossipsub_peers = fanout_peers
                if scorer is not None and gossipsub_peers:
                    send_to.update(
                        p
                        for p in gossipsub_peers
                        if scorer.allow_gossip(p, [topic]) and not scorer.is_graylisted(p, [topic])
                    )
                else:
                    send_to.update(gossipsub_peers)
            send_to.discard(msg_forwarder)
            send_to.discard(origin)
            dont_send = self.dont_send_message_ids
            if msg_id is not None and dont_send:
                send_to = {p for p in send_to if p not in dont_send or msg_id not in dont_send[p]}
            yield from send_to

        def send_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, priority: bool = False) -> None:
            # The common case, a forwarded message: queue the RPC itself (shared by every
            # peer it goes to; nothing mutates a queued RPC). Anything that needs a copy (a
            # peer record to strip, control to piggyback, splitting) takes py-libp2p's path.
            queue = self.pubsub.peer_queues.get(peer_id) if self.pubsub is not None else None
            if (
                queue is None
                or rpc.HasField("senderRecord")
                or peer_id in self._pending_control
                or rpc.ByteSize() > queue.max_message_size
            ):
                super().send_rpc(peer_id, rpc, priority)
            elif not queue.push(rpc, priority=priority):
                self._handle_dropped_rpc(peer_id, rpc, "queue_full")

        def _piggyback_control_retry(self, peer_id: ID, rpc: rpc_pb2.RPC) -> None:
            # Called by send_rpc on its per-peer copy of the RPC, before splitting: the
            # signed peer record went out once, in the hello RPC that opened the stream.
            rpc.ClearField("senderRecord")
            super()._piggyback_control_retry(peer_id, rpc)

        def _handle_dropped_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, reason: str) -> None:
            self._count(f"gossip.dropped_{reason}")
            super()._handle_dropped_rpc(peer_id, rpc, reason)

        def _count(self, name: str) -> None:
            """Add one to the pubsub's counter ``name`` (the transport's stats)."""
            stats = getattr(self.pubsub, "stats", None)
            if stats is not None:
                stats.inc(name)

    return AxlGossipSub


def _always_passes(threshold: float) -> bool:
    """A ``score >= threshold`` gate that every score passes."""
    return threshold == -math.inf

"""py-libp2p's ``Pubsub`` with a cheaper hot path: what every delivered topic message paid
for per RPC (see docs/libp2p.md, "Topics: GossipSub", "Cost per message").

* **Coalesced sends.** py-libp2p's per-peer writer took one RPC off the peer's queue per
  stream write. Here it takes everything queued for the peer and writes it as one RPC
  (:func:`axl._libp2p_rpc.coalesce`, at most the RPC size cap each): idle, a message goes out
  alone at once; under load the per-RPC cost (a yamux frame, a Noise message, a socket send,
  a parse on the other side) is shared by every message that queued meanwhile. The queue
  stays py-libp2p's: 32 RPCs per peer, further ones dropped and counted
  (``gossip.dropped_queue_full``), so a slow peer costs bounded memory.
* **Buffered, inline receive.** py-libp2p read each RPC in three stream reads (each varint
  byte, then the body) and spawned a service-manager task per published message (walking its
  task tree to find the parent). Here one read takes up to 64 KiB and yields every RPC it
  completes (:class:`axl._libp2p_rpc.RpcDecoder`), and messages are handled in the reader.
  Messages on topics without validators (all of the transport's) skip py-libp2p's
  validation cache, whose every insert scanned a 1,000-entry list. A copy of a message
  already seen (most copies: a mesh of degree D sends each message ~D times) is counted
  (``gossip.duplicates``) and dropped before ``push_msg``, which would only have rebuilt the
  origin's peer id and checked two blacklists first.
* **Typed, counted refusals.** An RPC over the size cap (checked on its length prefix), a
  malformed prefix or protobuf, or a bad peer record ends in a counted outcome
  (``gossip.refused_<reason>``) and, for the first two, a reset stream; one message of an RPC
  that fails inside py-libp2p costs only itself (``gossip.refused_message``). Messages whose
  AXL envelope is bad are the bus's to reject and count, one by one, like any frame.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ._errors import DecodeError, FrameTooLarge
from ._libp2p_choke import ChokeOrder, control_bytes
from ._libp2p_config import _READ_CHUNK
from ._libp2p_flat import flat_writer
from ._libp2p_inline import InlineRpcs
from ._libp2p_rpc import RpcDecoder, coalesce
from ._libp2p_yamux import window_update_due
from ._stats import Counters

if TYPE_CHECKING:
    from libp2p.abc import INetStream
    from libp2p.pubsub.rpc_queue import RpcQueue

logger = logging.getLogger("axl.libp2p")


def pubsub_class() -> type[Any]:
    """The ``Pubsub`` class to instantiate (built lazily: libp2p imports slowly)."""
    global _PUBSUB
    if _PUBSUB is None:
        _PUBSUB = _build_class()
    return _PUBSUB


_PUBSUB: type[Any] | None = None


def _build_class() -> type[Any]:
    import libp2p.pubsub.pubsub as pubsub_module
    from google.protobuf.message import DecodeError as ProtobufDecodeError
    from libp2p.io.exceptions import IOException
    from libp2p.network.connection.exceptions import RawConnError
    from libp2p.network.stream.exceptions import StreamError
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.pubsub.validators import signature_validator
    from libp2p.utils import encode_uvarint

    SubOpts = rpc_pb2.RPC.SubOpts

    class AxlPubsub(Pubsub):
        """Pubsub with coalesced sends, buffered inline receives and counted refusals."""

        def __init__(self, *args: Any, stats: Counters | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.stats = stats if stats is not None else Counters()
            self.deliver: dict[str, Callable[[Any], None]] = {}
            """Per topic, a callback taking each new message in place of py-libp2p's
            subscription channel (and the task that would drain it)."""

        def get_hello_packet(self) -> rpc_pb2.RPC:
            """py-libp2p's hello (our subscriptions and peer record), saying that we speak
            choking when the router does (``axl/_libp2p_choke.py``)."""
            packet = super().get_hello_packet()
            if getattr(self.router, "chokes", None) is not None:
                packet.MergeFromString(control_bytes([ChokeOrder(hello=True)]))
            return packet

        def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
            deliver = self.deliver
            for topic in publish_message.topicIDs:
                if topic not in self.topic_ids:
                    continue
                handler = deliver.get(topic)
                if handler is not None:
                    handler(publish_message)
                    continue
                try:
                    self.subscribed_topics_send[topic].send_nowait(publish_message)
                except trio.WouldBlock:
                    self.stats.inc("gossip.dropped_subscription_full")

        async def handle_sending_messages(
            self, peer_id: ID, stream: INetStream, queue: RpcQueue
        ) -> None:
            stats = self.stats
            flat = flat_writer(stream, stats)
            try:
                while True:
                    rpc = await queue.pop()
                    if rpc is None:
                        return  # the queue was closed: the peer is gone
                    batch = [rpc]
                    while len(queue):
                        more = await queue.pop()  # returns at once: an item is queued
                        if more is None:
                            break
                        batch.append(more)
                    sent = flat_sent = 0
                    for out in coalesce(batch, queue.max_message_size):
                        sent += 1
                        if flat is not None:
                            body = out.SerializeToString()
                            if await flat.write(encode_uvarint(len(body)) + body):
                                flat_sent += 1
                                continue
                        if not await self.write_msg(stream, out):
                            return
                    stats.inc("gossip.rpcs_sent", sent)
                    if flat_sent:
                        stats.inc("gossip.rpcs_flat", flat_sent)
                    stats.inc("gossip.rpcs_queued", len(batch))
            except Exception as exc:
                logger.debug("gossip writer for %s ended: %r", peer_id, exc)
                self._handle_dead_peer(peer_id)

        async def _handle_new_peer(self, peer_id: ID) -> None:
            # py-libp2p builds the hello (our subscriptions) after opening the stream, writes
            # it (an await) and registers the peer only then: a subscribe or unsubscribe in
            # that window reached neither the hello nor the peer (announcements go to
            # registered peers), which then never knew we were on the topic. Seen in the
            # five-process test (one node never learned another's subscription, so it never
            # grafted it and that node's shout missed the bootstrap node).
            before = set(self.topic_ids)
            await super()._handle_new_peer(peer_id)
            now = set(self.topic_ids)
            queue = self.peer_queues.get(peer_id)
            if now == before or queue is None or peer_id not in self.peers:
                return
            subs = [SubOpts(subscribe=True, topicid=t) for t in sorted(now)]
            subs += [SubOpts(subscribe=False, topicid=t) for t in sorted(before - now)]
            if queue.push(rpc_pb2.RPC(subscriptions=subs)):
                self.stats.inc("gossip.subscriptions_resent")

        async def validate_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
            if not any(topic in self.topic_validators for topic in msg.topicIDs):
                return  # nothing to run; py-libp2p would record a pass in an O(n) LRU list
            await super().validate_msg(msg_forwarder, msg)

        async def continuously_read_stream(self, stream: INetStream) -> None:
            peer_id = stream.muxed_conn.peer_id
            decoder = RpcDecoder(self.max_inbound_rpc_size)
            muxed_stream: Any = stream.muxed_stream  # type: ignore[attr-defined]
            conn: Any = stream.muxed_conn
            inline = InlineRpcs(self, conn, muxed_stream, peer_id, decoder)
            if inline.attached:
                self.stats.inc("gossip.inline_streams")
            try:
                while self.manager.is_running:
                    if inline.attached:
                        # The session's reader handles RPCs that need no await (the sink);
                        # this task takes what needs one, credit owed and the stream's end.
                        while inline.pending:
                            await self._handle_rpc(inline.pending.popleft(), peer_id)
                        if inline.refused is not None:
                            await self._refuse(stream, peer_id, inline.refused)
                            return
                        if window_update_due(muxed_stream):
                            try:
                                await muxed_stream._auto_tune_and_send_window_update()
                            except Exception as exc:  # the connection is going away
                                logger.debug("window update to %s failed: %r", peer_id, exc)
                                return
                        if conn.stream_idle(muxed_stream.stream_id):
                            inline.busy = False
                            await conn.wait_stream(muxed_stream.stream_id)
                            inline.busy = True
                            continue
                    data = await stream.read(_READ_CHUNK)
                    if not data:
                        return
                    for body in decoder.feed(data):
                        rpc = rpc_pb2.RPC()
                        try:
                            rpc.ParseFromString(body)
                        except ProtobufDecodeError:
                            await self._refuse(stream, peer_id, "malformed_rpc")
                            return
                        await self._handle_rpc(rpc, peer_id)
            except FrameTooLarge:
                await self._refuse(stream, peer_id, "oversized_rpc")
            except DecodeError:
                await self._refuse(stream, peer_id, "malformed_rpc")
            except (StreamError, IOException, RawConnError) as exc:
                logger.debug("gossip stream from %s ended: %r", peer_id, exc)
            finally:
                inline.detach()

        def _handle_rpc_now(self, rpc: Any, peer_id: ID) -> bool:
            """:meth:`_handle_rpc` for an RPC whose handling needs no await (no control,
            every new message it would push forwarded without one; control that is only choke
            orders); False, with nothing done, for any other RPC. Each message's id is
            computed once."""
            control = rpc.control if rpc.HasField("control") else None
            if control is not None and control.ListFields():
                return False  # IHAVE, IWANT, GRAFT, PRUNE, ...: py-libp2p's handlers await
            router: Any = self.router
            publish = rpc.publish
            wanted: list[tuple[Any, bytes]] = []
            seen = self.seen_messages
            if publish:
                topic_ids = self.topic_ids
                validators = self.topic_validators
                message_id = self._msg_id_constructor
                for msg in publish:
                    topics = msg.topicIDs
                    if not any(topic in topic_ids for topic in topics):
                        continue
                    mid = message_id(msg)
                    if not seen.has(mid) and (
                        any(topic in validators for topic in topics)
                        or not router.forwards_at_once(msg)
                    ):
                        return False
                    wanted.append((msg, mid))
            stats = self.stats
            stats.inc("gossip.rpcs_received")
            stats.inc("gossip.rpcs_inline")
            consume = pubsub_module.maybe_consume_signed_record  # type: ignore[attr-defined]
            if not consume(rpc, self.host, peer_id):
                stats.inc("gossip.refused_peer_record")
                return True
            if control is not None:
                router.take_orders(control, peer_id)
            if publish:
                stats.inc("gossip.messages_received", len(publish))
                for msg, mid in wanted:
                    if seen.has(mid):
                        stats.inc("gossip.duplicates")
                        router.on_duplicate(peer_id, msg, mid)
                        continue
                    try:
                        self._push_now(peer_id, msg, mid)
                    except Exception as exc:  # one bad message costs only itself
                        stats.inc("gossip.refused_message")
                        logger.debug("gossip message from %s failed: %r", peer_id, exc)
            self._take_subscriptions(peer_id, rpc)
            return True

        def _take_subscriptions(self, peer_id: ID, rpc: Any) -> None:
            """The RPC's subscription changes, refused (counted) past the per-RPC cap."""
            if not rpc.subscriptions:
                return
            if len(rpc.subscriptions) > self.max_subscriptions_per_rpc:
                self.stats.inc("gossip.refused_subscriptions")
            else:
                for sub in rpc.subscriptions:
                    self.handle_subscription(peer_id, sub)

        def _push_now(self, msg_forwarder: ID, msg: rpc_pb2.Message, mid: bytes) -> None:
            """py-libp2p's ``push_msg`` for a message (id ``mid``) on topics without
            validators that the router forwards without an await (same checks, same order,
            no await)."""
            blacklisted = self.blacklisted_peers
            if msg_forwarder in blacklisted:
                return
            origin = ID(msg.from_id)
            if origin in blacklisted:
                return
            seen = self.seen_messages
            if seen.has(mid):
                return
            topics = msg.topicIDs
            scorer = getattr(self.router, "scorer", None)
            gate = scorer is not None and not (
                topics and scorer.params.publish_threshold == -math.inf
            )  # a -inf threshold passes every score
            if gate and not scorer.allow_publish(msg_forwarder, list(topics)):  # type: ignore[union-attr]
                return
            if self.strict_signing and not signature_validator(msg):
                return
            seen.add(mid)
            if scorer is not None:
                for topic in topics:
                    scorer.on_first_delivery(msg_forwarder, topic)
            if origin == self.host.get_id() and msg_forwarder != origin:
                return  # claims to be ours but was forwarded to us
            self.notify_subscriptions(msg)
            router: Any = self.router
            router.forward(msg_forwarder, msg, mid)

        async def _handle_rpc(self, rpc: Any, peer_id: ID) -> None:
            stats = self.stats
            stats.inc("gossip.rpcs_received")
            if rpc.publish:
                stats.inc("gossip.messages_received", len(rpc.publish))
            # Looked up per call: _libp2p_gossip replaces it with a cached check.
            consume = pubsub_module.maybe_consume_signed_record  # type: ignore[attr-defined]
            if not consume(rpc, self.host, peer_id):
                stats.inc("gossip.refused_peer_record")
                return
            seen = self.seen_messages
            for msg in rpc.publish:
                if not self._is_subscribed_to_msg(msg):
                    continue
                mid = self._msg_id_constructor(msg)
                if seen.has(mid):
                    stats.inc("gossip.duplicates")  # push_msg would return at its seen check
                    self.router.on_duplicate(peer_id, msg, mid)  # type: ignore[attr-defined]
                    continue
                try:
                    await self.push_msg(peer_id, msg)
                except Exception as exc:  # one bad message costs only itself
                    stats.inc("gossip.refused_message")
                    logger.debug("gossip message from %s failed: %r", peer_id, exc)
            self._take_subscriptions(peer_id, rpc)
            if rpc.HasField("control"):
                try:
                    await self.router.handle_rpc(rpc, peer_id)
                except Exception as exc:
                    stats.inc("gossip.refused_control")
                    logger.debug("gossip control from %s failed: %r", peer_id, exc)

        async def _refuse(self, stream: INetStream, peer_id: ID, reason: str) -> None:
            self.stats.inc(f"gossip.refused_{reason}")
            logger.info("gossip stream from %s reset: %s", peer_id, reason)
            try:
                await stream.reset()
            except Exception as exc:
                logger.debug("reset of %s's gossip stream failed: %r", peer_id, exc)
            self._handle_dead_peer(peer_id)

    return AxlPubsub

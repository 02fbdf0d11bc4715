"""The libp2p transport: AXL frames over a py-libp2p host (TCP, Noise, yamux, GossipSub).

One host per node, keyed by the node's own Ed25519 identity, so the bus peer id and the libp2p
peer id are the same. See ``docs/libp2p.md`` for the full picture; in short:

* **Direct frames** travel on ``/axl/1.0.0`` streams as length-prefixed frames
  (:mod:`axl._libp2p_framing`). Each peer we send to gets one long-lived outbound stream and
  one writer task that drains a bounded queue and writes every queued frame in a single stream
  write (batching; :mod:`axl._libp2p_links`). ``send`` waits while that queue is full.
* **Topics** go over GossipSub with the AXL frame as the message data. libp2p signs and checks
  its own message envelope; the bus checks the AXL signature inside on receipt.
* **Discovery** (:mod:`axl._libp2p_discovery`): bootstrap multiaddrs, plus a built-in peer
  exchange: a node asks its bootstrap peers for the peers they know, and every node announces
  its listen addresses on a reserved gossip topic. mDNS can be switched on in the config.
* **Limits** (:mod:`axl._libp2p_limits`): a frame size cap, a per-peer inbound rate limit
  (token bucket; the reader stops reading, which pushes back through yamux flow control), at
  most a few inbound streams per peer, bounded queues everywhere. A peer that violates the
  framing (garbage, oversized frames) is reset, disconnected and refused for ``ban_time``
  seconds; everybody else is served.
* **Blobs** (:mod:`axl._libp2p_bulk`): bulk streams on ``/axl/blob/1.0.0``, one yamux stream
  each, so chunks never delay small frames on the same connection.
* **Failures**: a dead connection tears the peer's link down; later sends re-dial with
  exponential backoff and raise :class:`PeerUnreachable` while the peer stays unreachable.

The host and its security set-up live in :mod:`axl._libp2p_host`, the settings in
:mod:`axl._libp2p_config`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from typing import Any

import trio

from ._errors import ListenError, PeerUnreachable, TransportClosed
from ._identity import Identity, PeerId
from ._libp2p_base import peer_id_of
from ._libp2p_bulk import BULK_PROTOCOL_ID, BulkMixin
from ._libp2p_config import PEER_EXCHANGE_TOPIC, PEER_LIST_PROTOCOL, PROTOCOL_ID, Libp2pConfig
from ._libp2p_dht import Dht
from ._libp2p_discovery import DiscoveryMixin
from ._libp2p_host import build_host, check_tcp_ports_free, disconnect_notifee
from ._libp2p_limits import LimitsMixin
from ._libp2p_links import LinksMixin
from ._libp2p_swarm import close_connections, install_inbound_handler, quiet_stream_events
from ._transport import InboundFrame

__all__ = [
    "PEER_EXCHANGE_TOPIC",
    "PEER_LIST_PROTOCOL",
    "PROTOCOL_ID",
    "Libp2pConfig",
    "Libp2pTransport",
]

logger = logging.getLogger("axl.libp2p")


class Libp2pTransport(LinksMixin, LimitsMixin, DiscoveryMixin, BulkMixin):
    """A :class:`~axl.Transport` over a py-libp2p host.

    Open it with :meth:`open` (an async context manager); it listens, dials the bootstrap peers
    and runs its tasks until the block exits or :meth:`aclose` is called.

    ``send`` raises :class:`PeerUnreachable` when the peer has no known address, cannot be
    dialled (then further sends fail fast until its backoff expires) or drops while frames are
    queued; :class:`FrameTooLarge` for a frame over the cap; :class:`TransportClosed` after
    close. Topic delivery is at-most-once.
    """

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        identity: Identity,
        *,
        listen: Sequence[str] | None = None,
        bootstrap: Sequence[str] | None = None,
        config: Libp2pConfig | None = None,
    ) -> AsyncIterator[Libp2pTransport]:
        """Start a transport for ``identity``; ``listen``/``bootstrap`` override the config's.

        Raises :class:`ListenError` (an ``OSError``) if a listen address cannot be bound. On
        exit the host is closed and every task of the transport has finished.
        """
        config = config or Libp2pConfig()
        if listen is not None:
            config = replace(config, listen=tuple(listen))
        if bootstrap is not None:
            config = replace(config, bootstrap=tuple(bootstrap))
        transport = cls(identity, config)
        failure: ListenError | None = None
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(transport.run)
            except ListenError as exc:  # raised bare, not in a group: callers catch it
                failure = exc
            else:
                try:
                    yield transport
                finally:
                    await transport.aclose()
        if failure is not None:
            raise failure

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the host until :meth:`aclose` or cancellation (``await nursery.start(t.run)``)."""
        import multiaddr
        from libp2p.custom_types import TProtocol
        from libp2p.tools.anyio_service import background_trio_service

        config = self.config
        check_tcp_ports_free(config.listen)
        host, pubsub = build_host(self.identity, config, self.stats)
        router: Any = pubsub.router  # our GossipSub, a ServiceAPI (typed as the interface)
        listen = [multiaddr.Multiaddr(addr) for addr in config.listen]
        host.set_stream_handler(TProtocol(PROTOCOL_ID), self._handle_inbound)
        host.set_stream_handler(TProtocol(BULK_PROTOCOL_ID), self._handle_bulk)
        if config.peer_exchange:
            host.set_stream_handler(TProtocol(PEER_LIST_PROTOCOL), self._serve_peer_list)
        dht = Dht(host)
        self._dht = dht
        host.get_network().register_notifee(
            disconnect_notifee(self._connection_closed, self._connection_opened)
        )
        install_inbound_handler(host.get_network(), self._budgets, self._refused)
        quiet_stream_events(host.get_network())
        failure: ListenError | None = None
        self._host, self._pubsub = host, pubsub
        try:
            with trio.CancelScope() as scope:
                self._run_scope = scope
                if self._closed:
                    scope.cancel()
                try:
                    async with (
                        host.run(listen),
                        background_trio_service(pubsub),
                        # The router is a service of its own: its heartbeat repairs meshes
                        # (GRAFT below D_low), gossips IHAVE, expires fanout, bounds the cache.
                        background_trio_service(router),
                        dht.service(),
                        trio.open_nursery() as nursery,
                    ):
                        self._nursery = nursery
                        failure = _unbound(host, listen)
                        if failure is not None:
                            self._close_requested.set()
                        await pubsub.wait_until_ready()
                        if failure is None:
                            nursery.start_soon(self._keep_peers)
                        if config.peer_exchange and failure is None:
                            await self._start_peer_exchange(nursery, pubsub)
                        async with trio.open_nursery() as first_dials:
                            for addr in config.bootstrap if failure is None else ():
                                first_dials.start_soon(nursery.start, self._keep_connected, addr)
                        if failure is None:
                            task_status.started()
                        await self._close_requested.wait()
                        # Close connections explicitly while the host still runs: a host torn
                        # down by cancellation alone can leave its peers' connections half-open.
                        # Shielded: this body is inside the nursery just cancelled, so an
                        # unshielded close was cancelled at once and, being marked done, never
                        # ran again: listeners kept accepting (and completing handshakes with
                        # this identity) and peers saw no close until their own timeouts.
                        nursery.cancel_scope.cancel()
                        with trio.CancelScope(shield=True):
                            with trio.move_on_after(2.0), suppress(Exception):
                                await close_connections(host.get_network())
                            with trio.move_on_after(5.0), suppress(Exception):
                                await host.close()
                except* Exception as group:
                    if not self._close_requested.is_set():
                        raise
                    # py-libp2p's teardown races (a pubsub RPC arriving after its service
                    # stopped, ...) surface here once we are closing anyway.
                    logger.debug("ignored errors while closing the host: %r", group)
        finally:
            self._closed = True
            self._nursery = None
            self._inbox_receive.close()
            self._close_bulk()
            # Shielded so a cancelled run still closes the host, and bounded like the close
            # above so a host that never finishes closing cannot hang aclose() for good.
            with trio.CancelScope(shield=True), trio.move_on_after(5.0), suppress(Exception):
                await host.close()
            self._stopped.set()
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        """Close the host and every stream; pending and later ``receive`` calls raise
        :class:`TransportClosed`. Idempotent; returns once the transport's tasks are done."""
        self._closed = True
        self._inbox_receive.close()
        self._close_bulk()
        self._close_requested.set()
        if self._run_scope is not None:
            with trio.CancelScope(shield=True):
                await self._stopped.wait()
        else:
            await trio.lowlevel.checkpoint()

    def _connection_opened(self, pid: Any) -> None:
        # The peer is reachable again (a restarted agent dialled us): its dial backoff, built
        # up by failed sends while it was down (up to reconnect_max), must not keep refusing
        # sends over the connection it just opened. Noise proved the peer id.
        peer = peer_id_of(pid.to_bytes())
        if peer is not None:
            self._lift_backoff(peer)
            self._hearsay.connected(peer)
        if self._nursery is not None and self._dht is not None:
            self._nursery.start_soon(self._dht.add, pid)

    def _connection_closed(self, network: Any, pid: Any) -> None:
        event, self._disconnected = self._disconnected, trio.Event()
        event.set()
        self._on_disconnected(network, pid)

    # -- introspection -----------------------------------------------------------------------

    @property
    def local_peer(self) -> PeerId:
        return self._peer

    @property
    def listen_addrs(self) -> list[str]:
        """Our dialable addresses, each ending in ``/p2p/<peer id>`` (give one as bootstrap)."""
        host = self._check_open()
        return [str(addr) for addr in host.get_addrs()]

    def connected_peers(self) -> set[PeerId]:
        """Peers with an open libp2p connection to us."""
        host = self._check_open()
        peers = (peer_id_of(pid.to_bytes()) for pid in host.get_connected_peers())
        return {peer for peer in peers if peer is not None}

    def known_peers(self) -> set[PeerId]:
        """Peers we have an address for (from bootstrap, peer exchange or connections)."""
        host = self._check_open()
        # Raw ids first, one PeerId per distinct peer (most known peers are connected too).
        raws = {pid.to_bytes() for pid in host.get_peerstore().peers_with_addrs()}
        raws.update(pid.to_bytes() for pid in host.get_network().connections)
        raws.discard(self._peer.raw)
        return _peer_ids(raws)

    def topic_peers(self, topic: str) -> set[PeerId]:
        """Peers we currently know to be subscribed to ``topic`` (from GossipSub)."""
        self._check_open()
        assert self._pubsub is not None
        return _peer_ids(pid.to_bytes() for pid in self._pubsub.peer_topics.get(topic, ()))

    async def find_peer(self, peer: PeerId, *, timeout: float = 10.0) -> list[str]:
        """Look ``peer``'s addresses up in the Kademlia DHT (O(log n) rounds; see
        :mod:`axl._libp2p_dht`); they are kept in the peerstore for the next dial.

        Raises :class:`PeerUnreachable` when no address for it is known after the lookup,
        :class:`TransportClosed` when the transport is not running or closes meanwhile.
        Counted in :attr:`stats`: ``dht.lookups``, ``dht.found`` (an answer named the peer),
        ``dht.rounds`` and ``dht.queried`` (peers asked).
        """
        self._check_open()
        nursery = self._nursery
        if self._dht is None or nursery is None:
            raise TransportClosed(f"transport of {self._peer.short()} is not running")
        lookup = await self._dht.find(peer, timeout=timeout, nursery=nursery)
        self.stats.inc("dht.lookups")
        self.stats.inc("dht.found", int(lookup.found))
        self.stats.inc("dht.rounds", lookup.rounds)
        self.stats.inc("dht.queried", lookup.queried)
        if not lookup.addrs:
            raise PeerUnreachable(f"no address found for {peer.short()} in the DHT")
        self._note_peer(peer)
        return lookup.addrs

    async def receive(self) -> InboundFrame:
        """The next inbound frame; raises :class:`TransportClosed` once closed."""
        try:
            return await self._inbox_receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(f"transport of {self._peer.short()} is closed") from None

    async def receive_batch(self, max_frames: int) -> list[InboundFrame]:
        """The next inbound frame and those queued behind it (``max_frames`` at most); raises
        :class:`TransportClosed` once closed."""
        batch = [await self.receive()]
        inbox = self._inbox_receive
        while len(batch) < max_frames:
            try:
                batch.append(inbox.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break  # a closed inbox is reported by the next call
        return batch

    # -- topics ------------------------------------------------------------------------------

    async def publish(self, topic: str, frame: bytes) -> None:
        """Publish ``frame`` on ``topic`` over GossipSub (not delivered to ourselves)."""
        self._check_open()
        _check_topic(topic)
        self._check_frame_size(frame)
        assert self._pubsub is not None
        await self._pubsub.publish(topic, frame)
        self.stats.inc("topic.published")

    async def subscribe(self, topic: str) -> None:
        """Start receiving the topic's frames (idempotent)."""
        await trio.lowlevel.checkpoint()  # first: a cancelled subscribe has no effect
        self._check_open()
        _check_topic(topic)
        if topic in self._topics:
            return
        assert self._pubsub is not None
        token = object()
        self._topics[topic] = token  # before the await: a concurrent subscribe returns early
        # Registered first: the router may deliver as soon as the subscription exists.
        self._receivers()[topic] = self._topic_receiver(topic)
        try:
            await self._pubsub.subscribe(topic)
        except BaseException:
            # Cancelled or failed: forget the topic so a later subscribe tries again (py-libp2p
            # hands back the same subscription if it got as far as registering it).
            if self._topics.get(topic) is token:
                del self._topics[topic]
                self._receivers().pop(topic, None)
            raise

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving the topic's frames (idempotent)."""
        token = self._topics.pop(topic, None)
        if token is None or self._closed or self._pubsub is None:
            await trio.lowlevel.checkpoint()
            return
        self._receivers().pop(topic, None)
        await self._pubsub.unsubscribe(topic)

    def _receivers(self) -> dict[str, Callable[[Any], None]]:
        """Our pubsub's per-topic message callbacks (``AxlPubsub.deliver``)."""
        receivers: dict[str, Callable[[Any], None]] = self._pubsub.deliver  # type: ignore[union-attr]
        return receivers

    def _topic_receiver(self, topic: str) -> Callable[[Any], None]:
        """The callback pubsub hands each new message of ``topic`` to, in the task that read
        it: straight into the bounded inbox (full: dropped and counted), no task between."""
        own = self._peer.raw
        inbox = self._inbox_send
        stats = self.stats

        def receive(message: Any) -> None:
            origin = bytes(message.from_id)
            if origin == own:
                return
            peer = peer_id_of(origin)
            if peer is None:
                return
            try:
                inbox.send_nowait(InboundFrame(bytes(message.data), peer, topic))
            except trio.WouldBlock:
                stats.inc("dropped.topic_inbox_full")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # closing

        return receive


def _peer_ids(raws: Iterable[bytes]) -> set[PeerId]:
    """The AXL peer ids among raw libp2p peer ids (others are skipped)."""
    peers = (peer_id_of(raw) for raw in raws)
    return {peer for peer in peers if peer is not None}


def _unbound(host: Any, listen: Sequence[Any]) -> ListenError | None:
    """A :class:`ListenError` naming the addresses the host is not listening on, if any
    (py-libp2p logs a failed bind and carries on)."""
    listeners = host.get_network().listeners
    missing = [str(addr) for addr in listen if str(addr) not in listeners]
    if not missing:
        return None
    return ListenError(f"could not listen on {', '.join(missing)} (bad address or in use)")


def _check_topic(topic: str) -> None:
    if topic == PEER_EXCHANGE_TOPIC:
        raise ValueError(f"{PEER_EXCHANGE_TOPIC!r} is reserved for the transport's peer exchange")

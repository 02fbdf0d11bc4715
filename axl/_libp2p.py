"""The libp2p transport: AXL frames over a py-libp2p host (TCP, Noise, yamux, GossipSub).

One host per node, keyed by the node's own Ed25519 identity, so the bus peer id and the libp2p
peer id are the same. See ``docs/libp2p.md`` for the full picture; in short:

* **Direct frames** travel on ``/axl/1.0.0`` streams as length-prefixed frames
  (:mod:`axl._libp2p_framing`). Each peer we send to gets one long-lived outbound stream and
  one writer task that drains a bounded queue and writes every queued frame in a single stream
  write (batching). ``send`` waits while that queue is full (backpressure).
* **Topics** go over GossipSub with the AXL frame as the message data. libp2p signs and checks
  its own message envelope; the bus checks the AXL signature inside on receipt.
* **Discovery**: bootstrap multiaddrs, plus a built-in peer exchange: a node asks its bootstrap
  peers for the peers they know, and every node announces its listen addresses on a reserved
  gossip topic, so nodes that only know a bootstrap node learn each other's addresses. mDNS
  can be switched on in the config.
* **Limits**: a frame size cap, a per-peer inbound rate limit (token bucket; the reader stops
  reading, which pushes back through yamux flow control), at most a few inbound streams per
  peer, bounded queues everywhere. A peer that violates the framing (garbage, oversized
  frames) is reset, disconnected and refused for ``ban_time`` seconds; everybody else is served.
* **Failures**: a dead connection tears the peer's link down; later sends re-dial with
  exponential backoff and raise :class:`PeerUnreachable` while the peer stays unreachable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import trio

from ._errors import DecodeError, FrameTooLarge, PeerUnreachable, TransportClosed
from ._identity import Identity, PeerId
from ._libp2p_framing import Backoff, FrameDecoder, TokenBucket, encode_batch
from ._stats import Counters
from ._transport import InboundFrame

if TYPE_CHECKING:  # libp2p is imported lazily: it takes most of a second to import.
    from libp2p.abc import IHost, INetStream
    from libp2p.pubsub.pubsub import Pubsub

logger = logging.getLogger("axl.libp2p")

PROTOCOL_ID = "/axl/1.0.0"
PEER_EXCHANGE_TOPIC = "_axl/peers/1"
"""Reserved gossip topic on which nodes announce their listen addresses."""
PEER_LIST_PROTOCOL = "/axl/peers/1.0.0"
"""A node answers a stream on this protocol with the peers it knows (``<peer id> <addr>``
lines) and closes it; nodes ask their bootstrap peers, so a newcomer learns the swarm at once."""
"""Reserved gossip topic on which nodes announce their listen addresses."""

_READ_CHUNK = 1 << 16
_MAX_ANNOUNCED_ADDRS = 16
_MAX_ANNOUNCE_BYTES = 4096
_ADDR_TTL = 600.0
_MAX_PEER_LIST = 256
_MAX_PEER_LIST_BYTES = 64 * 1024


@dataclass(frozen=True)
class Libp2pConfig:
    """Settings of a :class:`Libp2pTransport`. Times are in seconds.

    The defaults suit a LAN or loopback; ``listen`` binds an ephemeral TCP port on 127.0.0.1.
    """

    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    """Multiaddrs to listen on (TCP; ``/udp/…/quic-v1`` is not supported, see the docs)."""
    bootstrap: tuple[str, ...] = ()
    """Multiaddrs with ``/p2p/<peer id>`` to connect to at start-up (and re-dial with backoff)."""
    max_frame_size: int = (1 << 20) + 4096
    """Largest frame accepted or sent; a peer announcing a bigger one is cut off."""
    send_queue: int = 1024
    """Frames queued per destination peer before ``send`` waits."""
    max_batch_bytes: int = 256 * 1024
    """Most bytes the writer packs into one stream write."""
    inbox_capacity: int = 4096
    """Inbound frames waiting for ``receive``; direct readers wait, topic frames are dropped."""
    rate_limit: float = 20_000.0
    """Inbound direct frames per second allowed per peer (sustained)."""
    rate_burst: int = 20_000
    """Inbound direct frames a peer may send in a burst."""
    max_inbound_streams: int = 4
    """Concurrent ``/axl/1.0.0`` streams accepted from one peer."""
    dial_timeout: float = 5.0
    """Connecting and opening a stream to a peer must finish within this time."""
    write_timeout: float = 10.0
    """A stream write that cannot finish in this time (the peer stopped reading) drops the
    link: queued frames are discarded and ``send`` raises :class:`PeerUnreachable`."""
    link_idle_timeout: float = 300.0
    """An outbound stream with nothing to send for this long is closed (reopened on demand)."""
    reconnect_base: float = 0.25
    """First backoff after a failed dial; doubles per failure up to ``reconnect_max``."""
    reconnect_max: float = 15.0
    ban_time: float = 60.0
    """How long a peer that violated the protocol is refused."""
    gossip_degree: int = 6
    gossip_degree_low: int = 4
    gossip_degree_high: int = 12
    gossip_heartbeat: float = 1.0
    sign_gossip: bool = True
    """libp2p's own signature on gossip messages (authenticates the origin of peer exchange)."""
    peer_exchange: bool = True
    """Announce our addresses on :data:`PEER_EXCHANGE_TOPIC`, learn the others', and serve and
    ask bootstrap peers for peer lists (:data:`PEER_LIST_PROTOCOL`)."""
    announce_interval: float = 15.0
    """Longest pause between two announcements (they start fast and back off to this)."""
    enable_mdns: bool = False
    """py-libp2p's mDNS discovery (LAN multicast; needs ``zeroconf``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``libp2p.new_host`` (advanced)."""

    def __post_init__(self) -> None:
        if self.max_frame_size < 1 or self.send_queue < 1 or self.inbox_capacity < 1:
            raise ValueError("max_frame_size, send_queue and inbox_capacity must be >= 1")
        if self.rate_limit <= 0 or self.rate_burst < 1 or self.max_inbound_streams < 1:
            raise ValueError("rate_limit, rate_burst and max_inbound_streams must be positive")


class _Link:
    """Our outbound side towards one peer: a bounded queue and the writer task's state."""

    __slots__ = ("error", "peer", "ready", "receive", "scope", "send")

    def __init__(self, peer: PeerId, capacity: int) -> None:
        self.peer = peer
        self.send, self.receive = trio.open_memory_channel[bytes](capacity)
        self.ready = trio.Event()
        self.error: BaseException | None = None
        self.scope = trio.CancelScope()


def _peer_id_of(raw: bytes) -> PeerId | None:
    from ._errors import InvalidPeerId

    try:
        return PeerId(raw)
    except InvalidPeerId:
        return None


class Libp2pTransport:
    """A :class:`~axl.Transport` over a py-libp2p host.

    Open it with :meth:`open` (an async context manager); it listens, dials the bootstrap peers
    and runs its tasks until the block exits or :meth:`aclose` is called.

    ``send`` raises :class:`PeerUnreachable` when the peer has no known address, cannot be
    dialled (then further sends fail fast until its backoff expires) or drops while frames are
    queued; :class:`FrameTooLarge` for a frame over the cap; :class:`TransportClosed` after
    close. Topic delivery is at-most-once.
    """

    def __init__(self, identity: Identity, config: Libp2pConfig | None = None) -> None:
        self.identity = identity
        self.config = config or Libp2pConfig()
        self.stats = Counters()
        self._peer = identity.peer_id
        self._inbox_send, self._inbox_receive = trio.open_memory_channel[InboundFrame](
            self.config.inbox_capacity
        )
        self._links: dict[PeerId, _Link] = {}
        self._backoff = Backoff(self.config.reconnect_base, self.config.reconnect_max)
        self._banned: dict[PeerId, float] = {}
        self._inbound_streams: dict[PeerId, int] = {}
        self._buckets: dict[PeerId, TokenBucket] = {}
        self._topics: dict[str, trio.CancelScope] = {}
        self._known: set[PeerId] = set()
        self._announce_wanted = trio.Event()
        self._disconnected = trio.Event()
        self._host: IHost | None = None
        self._pubsub: Pubsub | None = None
        self._nursery: trio.Nursery | None = None
        self._run_scope: trio.CancelScope | None = None
        self._closed = False
        self._stopped = trio.Event()
        self._close_requested = trio.Event()

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

        Raises ``OSError`` if a listen address cannot be bound. On exit the host is closed and
        every task of the transport has finished.
        """
        config = config or Libp2pConfig()
        if listen is not None:
            config = replace(config, listen=tuple(listen))
        if bootstrap is not None:
            config = replace(config, bootstrap=tuple(bootstrap))
        transport = cls(identity, config)
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.run)
            try:
                yield transport
            finally:
                await transport.aclose()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the host until :meth:`aclose` or cancellation (``await nursery.start(t.run)``)."""
        import multiaddr
        from libp2p import new_host
        from libp2p.crypto.ed25519 import Ed25519PrivateKey
        from libp2p.crypto.keys import KeyPair
        from libp2p.custom_types import TProtocol
        from libp2p.pubsub.gossipsub import GossipSub
        from libp2p.pubsub.pubsub import Pubsub
        from libp2p.tools.anyio_service import background_trio_service

        config = self.config
        private = Ed25519PrivateKey.from_bytes(self.identity.private_seed())
        listen = [multiaddr.Multiaddr(addr) for addr in config.listen]
        host = new_host(
            key_pair=KeyPair(private, private.get_public_key()),
            listen_addrs=listen,
            enable_mDNS=config.enable_mdns,
            **config.extra,
        )
        if str(host.get_id()) != str(self._peer):
            raise RuntimeError("libp2p derived another peer id from this identity")
        host.set_stream_handler(TProtocol(PROTOCOL_ID), self._handle_inbound)
        if config.peer_exchange:
            host.set_stream_handler(TProtocol(PEER_LIST_PROTOCOL), self._serve_peer_list)
        host.get_network().register_notifee(_notifee(self))
        router = GossipSub(
            [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")],
            degree=config.gossip_degree,
            degree_low=config.gossip_degree_low,
            degree_high=config.gossip_degree_high,
            heartbeat_interval=config.gossip_heartbeat,  # type: ignore[arg-type]
            spam_protection_enabled=False,  # its fixed 10 msgs/s/topic cap is far too low
            eclipse_protection_enabled=False,
        )
        pubsub = Pubsub(
            host,
            router,
            strict_signing=config.sign_gossip,
            max_inbound_rpc_size=config.max_frame_size + 4096,
        )
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
                        trio.open_nursery() as nursery,
                    ):
                        self._nursery = nursery
                        await pubsub.wait_until_ready()
                        if config.peer_exchange:
                            await self._start_peer_exchange(nursery, pubsub)
                        async with trio.open_nursery() as first_dials:
                            for addr in config.bootstrap:
                                first_dials.start_soon(nursery.start, self._keep_connected, addr)
                        task_status.started()
                        await self._close_requested.wait()
                        # Close connections explicitly while the host still runs: a host torn
                        # down by cancellation alone can leave its peers' connections half-open.
                        nursery.cancel_scope.cancel()
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
            # Shielded so a cancelled run still closes the host, and bounded like the close
            # above so a host that never finishes closing cannot hang aclose() for good.
            with trio.CancelScope(shield=True), trio.move_on_after(5.0), suppress(Exception):
                await host.close()
            self._stopped.set()

    async def aclose(self) -> None:
        """Close the host and every stream; pending and later ``receive`` calls raise
        :class:`TransportClosed`. Idempotent; returns once the transport's tasks are done."""
        self._closed = True
        self._inbox_receive.close()
        self._close_requested.set()
        if self._run_scope is not None:
            with trio.CancelScope(shield=True):
                await self._stopped.wait()
        else:
            await trio.lowlevel.checkpoint()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_frame_size(self, frame: bytes) -> None:
        if len(frame) > self.config.max_frame_size:
            raise FrameTooLarge(
                f"frame of {len(frame)} bytes exceeds the transport cap "
                f"{self.config.max_frame_size}"
            )

    def _check_open(self) -> IHost:
        if self._closed or self._host is None:
            raise TransportClosed(f"transport of {self._peer.short()} is closed")
        return self._host

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
        peers = (_peer_id_of(pid.to_bytes()) for pid in host.get_connected_peers())
        return {peer for peer in peers if peer is not None}

    def known_peers(self) -> set[PeerId]:
        """Peers we have an address for (from bootstrap, peer exchange or connections)."""
        host = self._check_open()
        known: set[PeerId] = set()
        for pid in host.get_peerstore().peers_with_addrs():
            peer = _peer_id_of(pid.to_bytes())
            if peer is not None and peer != self._peer:
                known.add(peer)
        return known | self.connected_peers()

    def topic_peers(self, topic: str) -> set[PeerId]:
        """Peers we currently know to be subscribed to ``topic`` (from GossipSub)."""
        self._check_open()
        assert self._pubsub is not None
        peers = (_peer_id_of(pid.to_bytes()) for pid in self._pubsub.peer_topics.get(topic, ()))
        return {peer for peer in peers if peer is not None}

    # -- connecting --------------------------------------------------------------------------

    async def connect(self, addr: str) -> PeerId:
        """Dial a multiaddr that ends in ``/p2p/<peer id>``; return that peer's id.

        Raises :class:`PeerUnreachable` if the dial fails or times out, ``ValueError`` for an
        address without a peer id.
        """
        import multiaddr
        from libp2p.peer.peerinfo import info_from_p2p_addr

        host = self._check_open()
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:
            raise ValueError(f"not a multiaddr with a /p2p/ peer id: {addr!r}") from exc
        peer = _peer_id_of(info.peer_id.to_bytes())
        if peer is None:
            raise ValueError(f"{addr!r} names a non-Ed25519 peer; AXL peers use Ed25519 keys")
        try:
            with trio.fail_after(self.config.dial_timeout):
                await host.connect(info)
        except trio.TooSlowError as exc:
            raise PeerUnreachable(f"dialling {addr} timed out") from exc
        except Exception as exc:
            raise PeerUnreachable(f"could not dial {addr}: {exc}") from exc
        self._note_peer(peer)
        return peer

    async def _keep_connected(
        self, addr: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Stay connected to a bootstrap peer, re-dialling with backoff. Reports started after
        the first attempt, whatever its outcome."""
        backoff = Backoff(self.config.reconnect_base, self.config.reconnect_max)
        host = self._check_open()
        from libp2p.peer.id import ID

        while True:
            try:
                peer = await self.connect(addr)
            except PeerUnreachable as exc:
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                retry_at = backoff.failed(addr, trio.current_time())
                logger.info("bootstrap %s unreachable (%s); retrying", addr, exc)
                self.stats.inc("bootstrap.failed")
                await trio.sleep_until(retry_at)
                continue
            except ValueError:
                logger.error("bad bootstrap address %r", addr)
                task_status.started()
                return
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            backoff.succeeded(addr)
            self.stats.inc("bootstrap.connected")
            pause = 1.0
            while host.get_network().connections.get(ID(peer.raw)):
                if self.config.peer_exchange:
                    await self._ask_peer_list(peer)
                # ask again later (newcomers keep arriving), or re-dial once disconnected
                with trio.move_on_after(pause):
                    await self._disconnected.wait()
                pause = min(pause * 2, self.config.announce_interval)

    # -- direct frames: sending --------------------------------------------------------------

    async def send(self, peer: PeerId, frame: bytes) -> None:
        """Queue ``frame`` for ``peer``; waits while its queue is full.

        Raises :class:`PeerUnreachable`, :class:`FrameTooLarge`, :class:`TransportClosed`.
        """
        self._check_open()
        self._check_frame_size(frame)
        if not frame:
            raise ValueError("cannot send an empty frame")
        if peer == self._peer:
            try:
                await self._inbox_send.send(InboundFrame(frame, peer, None))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise TransportClosed("transport closed") from None
            return
        link = self._links.get(peer)
        if link is None:
            now = trio.current_time()
            retry_at = self._backoff.retry_at(peer)
            if retry_at > now:
                raise PeerUnreachable(
                    f"{peer.short()} was unreachable; next dial in {retry_at - now:.1f} s"
                )
            link = self._start_link(peer)
        if not link.ready.is_set():
            await link.ready.wait()
        if link.error is not None:
            raise PeerUnreachable(f"{peer.short()} is unreachable: {link.error}")
        try:
            await link.send.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self._closed:
                raise TransportClosed("transport closed") from None
            raise PeerUnreachable(
                f"connection to {peer.short()} dropped: {link.error or 'closed'}"
            ) from None

    def _start_link(self, peer: PeerId) -> _Link:
        if self._nursery is None:
            raise TransportClosed(f"transport of {self._peer.short()} is closed")
        link = _Link(peer, self.config.send_queue)
        self._links[peer] = link
        self._nursery.start_soon(self._run_link, link)
        return link

    async def _open_stream(self, peer: PeerId) -> INetStream:
        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID
        from libp2p.peer.peerinfo import PeerInfo

        host = self._check_open()
        pid = ID(peer.raw)
        protocols = [TProtocol(PROTOCOL_ID)]
        if host.get_network().connections.get(pid):
            try:
                return await host.new_stream(pid, protocols)
            except Exception as exc:  # a stale connection: drop it and dial afresh
                logger.debug("stream to %s failed on its connection: %r", peer.short(), exc)
                with trio.move_on_after(1.0), suppress(Exception):
                    await host.disconnect(pid)
        if not host.get_network().connections.get(pid):
            try:
                addrs = host.get_peerstore().addrs(pid)
            except Exception:  # PeerStoreError: unknown or expired
                addrs = []
            if not addrs:
                raise PeerUnreachable(f"no known address for {peer.short()}")
            await host.connect(PeerInfo(pid, addrs))
        return await host.new_stream(pid, protocols)

    async def _run_link(self, link: _Link) -> None:
        peer = link.peer
        stream: INetStream | None = None
        try:
            with link.scope:
                try:
                    with trio.fail_after(self.config.dial_timeout):
                        stream = await self._open_stream(peer)
                except trio.TooSlowError:
                    link.error = PeerUnreachable(f"dialling {peer.short()} timed out")
                    return
                except Exception as exc:
                    link.error = exc
                    return
                self._backoff.succeeded(peer)
                self._note_peer(peer)
                link.ready.set()
                self.stats.inc("links.opened")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_outbound, link, stream, nursery.cancel_scope)
                    await self._write_loop(link, stream)
                    nursery.cancel_scope.cancel()  # idle or stuck: stop the watcher too
        except Exception as exc:
            link.error = link.error or exc
            logger.info("link to %s failed: %s", peer.short(), exc)
        finally:
            if link.error is not None and not link.ready.is_set():
                self._backoff.failed(peer, trio.current_time())
                self.stats.inc("links.dial_failed")
            elif link.error is None:
                link.error = PeerUnreachable(f"connection to {peer.short()} closed")
            link.ready.set()
            if self._links.get(peer) is link:
                del self._links[peer]
            # Close first: senders blocked on a full queue then fail with PeerUnreachable
            # instead of slipping their frame into a queue nobody will write.
            dropped = link.receive.statistics().current_buffer_used
            link.receive.close()
            if dropped:
                self.stats.inc("dropped.link_down", dropped)
            if stream is not None:
                with trio.CancelScope(shield=True), suppress(Exception):
                    with trio.move_on_after(1.0):
                        await stream.reset()

    def _on_disconnected(self, network: Any, pid: Any) -> None:
        """A connection closed: if it was the peer's last, its link is dead (py-libp2p does not
        always wake a writer blocked on a connection that went away)."""
        if network.connections.get(pid):
            return
        peer = _peer_id_of(pid.to_bytes())
        link = self._links.get(peer) if peer is not None else None
        if link is not None and link.ready.is_set():
            link.error = PeerUnreachable(f"connection to {link.peer.short()} closed")
            link.scope.cancel()
            self.stats.inc("links.disconnected")

    async def _write_loop(self, link: _Link, stream: INetStream) -> None:
        receive = link.receive
        limit = self.config.max_batch_bytes
        write_timeout = self.config.write_timeout
        while True:
            frame: bytes | None = None
            with trio.move_on_after(self.config.link_idle_timeout):
                frame = await receive.receive()
            if frame is None:
                try:
                    frame = receive.receive_nowait()
                except trio.WouldBlock:
                    # Idle: retire the link now, synchronously, so that no sender can queue
                    # on it any more (the next send opens a fresh one).
                    if self._links.get(link.peer) is link:
                        del self._links[link.peer]
                    link.receive.close()
                    self.stats.inc("links.idle_closed")
                    with trio.move_on_after(1.0), suppress(Exception):
                        await stream.close()
                    return
            batch = [frame]
            size = len(frame)
            while size < limit:
                try:
                    frame = receive.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(frame)
                size += len(frame)
            try:
                with trio.fail_after(write_timeout):
                    await stream.write(encode_batch(batch))
            except trio.TooSlowError:
                self.stats.inc("links.write_timeout")
                self._backoff.failed(link.peer, trio.current_time())
                link.error = PeerUnreachable(
                    f"{link.peer.short()} stopped reading (a write took over {write_timeout} s)"
                )
                self.stats.inc("dropped.link_down", len(batch))
                return
            self.stats.inc("frames.sent", len(batch))
            self.stats.inc("writes")

    async def _watch_outbound(
        self, link: _Link, stream: INetStream, scope: trio.CancelScope
    ) -> None:
        """The peer never writes on our outbound stream: any read result means it is gone."""
        try:
            await stream.read(1)
            link.error = PeerUnreachable(f"{link.peer.short()} wrote on its inbound stream")
        except Exception as exc:
            link.error = PeerUnreachable(f"connection to {link.peer.short()} lost: {exc!r}")
        scope.cancel()

    # -- direct frames: receiving ------------------------------------------------------------

    async def _handle_inbound(self, stream: INetStream) -> None:
        remote = stream.muxed_conn.peer_id
        peer = _peer_id_of(remote.to_bytes())
        now = trio.current_time()
        if peer is None or self._closed:
            await _reset(stream)
            return
        banned_until = self._banned.get(peer)
        if banned_until is not None:
            if banned_until > now:
                self.stats.inc("inbound.refused_banned")
                await _reset(stream)
                return
            del self._banned[peer]
        open_streams = self._inbound_streams.get(peer, 0)
        if open_streams >= self.config.max_inbound_streams:
            self.stats.inc("inbound.refused_streams")
            await _reset(stream)
            return
        self._inbound_streams[peer] = open_streams + 1
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = TokenBucket(self.config.rate_limit, self.config.rate_burst, now)
            self._buckets[peer] = bucket
        self._note_peer(peer)
        decoder = FrameDecoder(self.config.max_frame_size)
        inbox = self._inbox_send
        try:
            while True:
                data = await stream.read(_READ_CHUNK)
                if not data:
                    break
                frames = decoder.feed(data)
                if not frames:
                    continue
                wait = bucket.take(len(frames), trio.current_time())
                if wait > 0:
                    self.stats.inc("inbound.throttled")
                    await trio.sleep(wait)
                for frame in frames:
                    item = InboundFrame(frame, peer, None)
                    try:
                        inbox.send_nowait(item)  # no scheduling round trip per frame
                    except trio.WouldBlock:
                        await inbox.send(item)  # the inbox is full: backpressure
                self.stats.inc("frames.received", len(frames))
        except (FrameTooLarge, DecodeError) as exc:
            await self._punish(peer, stream, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await _reset(stream)
        except Exception as exc:  # stream reset, EOF, connection lost
            logger.debug("inbound stream from %s ended: %r", peer.short(), exc)
        finally:
            remaining = self._inbound_streams.get(peer, 1) - 1
            if remaining > 0:
                self._inbound_streams[peer] = remaining
            else:
                self._inbound_streams.pop(peer, None)
                self._buckets.pop(peer, None)

    async def _punish(self, peer: PeerId, stream: INetStream, exc: Exception) -> None:
        """Cut off a peer that broke the framing: reset, disconnect, refuse for a while."""
        from libp2p.peer.id import ID

        logger.warning("cutting off %s: %s", peer.short(), exc)
        self.stats.inc("peers.cut_off")
        self._banned[peer] = trio.current_time() + self.config.ban_time
        if len(self._banned) > 10_000:  # keep memory bounded under a sybil flood
            now = trio.current_time()
            self._banned = {p: t for p, t in self._banned.items() if t > now}
        await _reset(stream)
        link = self._links.get(peer)
        if link is not None:
            link.error = PeerUnreachable(f"{peer.short()} was cut off for misbehaving")
            link.scope.cancel()
        if self._host is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0), suppress(Exception):
                await self._host.disconnect(ID(peer.raw))

    async def receive(self) -> InboundFrame:
        """The next inbound frame; raises :class:`TransportClosed` once closed."""
        try:
            return await self._inbox_receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(f"transport of {self._peer.short()} is closed") from None

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
        assert self._pubsub is not None and self._nursery is not None
        scope = trio.CancelScope()
        self._topics[topic] = scope  # before the await: a concurrent subscribe returns early
        try:
            subscription = await self._pubsub.subscribe(topic)
        except BaseException:
            # Cancelled or failed: forget the topic so a later subscribe tries again (py-libp2p
            # hands back the same subscription if it got as far as registering it).
            if self._topics.get(topic) is scope:
                del self._topics[topic]
            raise
        self._nursery.start_soon(self._pump_topic, topic, subscription, scope)

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving the topic's frames (idempotent)."""
        scope = self._topics.pop(topic, None)
        if scope is None or self._closed or self._pubsub is None:
            await trio.lowlevel.checkpoint()
            return
        scope.cancel()
        await self._pubsub.unsubscribe(topic)

    async def _pump_topic(self, topic: str, subscription: Any, scope: trio.CancelScope) -> None:
        own = self._peer.raw
        inbox = self._inbox_send
        with scope:
            async for message in subscription:
                origin = bytes(message.from_id)
                if origin == own:
                    continue
                peer = _peer_id_of(origin)
                if peer is None:
                    continue
                try:
                    inbox.send_nowait(InboundFrame(bytes(message.data), peer, topic))
                except trio.WouldBlock:
                    self.stats.inc("dropped.topic_inbox_full")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    # -- peer exchange -----------------------------------------------------------------------

    async def _serve_peer_list(self, stream: INetStream) -> None:
        """Answer ``/axl/peers/1.0.0``: our known peers with their addresses, then close."""
        lines: list[str] = []
        try:
            host = self._check_open()
            store = host.get_peerstore()
            for pid in store.peers_with_addrs()[:_MAX_PEER_LIST]:
                peer = _peer_id_of(pid.to_bytes())
                if peer is None or peer == self._peer:
                    continue
                with suppress(Exception):
                    lines.extend(f"{peer} {addr}" for addr in store.addrs(pid)[:4])
            lines.extend(f"{self._peer} {addr}" for addr in host.get_transport_addrs())
            data = "\n".join(lines).encode()[:_MAX_PEER_LIST_BYTES]
            with trio.fail_after(5.0):
                await stream.write(data)
                await stream.close()
            self.stats.inc("peer_list.served")
        except Exception as exc:
            logger.debug("serving the peer list failed: %r", exc)
            await _reset(stream)

    async def _ask_peer_list(self, peer: PeerId) -> None:
        """Fetch a peer's peer list (bounded in size and time) into our peerstore."""
        import multiaddr
        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID

        host = self._check_open()
        data = b""
        try:
            with trio.fail_after(self.config.dial_timeout):
                stream = await host.new_stream(ID(peer.raw), [TProtocol(PEER_LIST_PROTOCOL)])
                try:
                    while len(data) < _MAX_PEER_LIST_BYTES:
                        chunk = await stream.read(_MAX_PEER_LIST_BYTES)
                        if not chunk:
                            break
                        data += chunk
                except Exception:  # StreamEOF: the list is complete
                    pass
                finally:
                    await _reset(stream)
        except Exception as exc:
            logger.debug("asking %s for peers failed: %r", peer.short(), exc)
            return
        store = host.get_peerstore()
        learned = 0
        for line in data.decode("utf-8", "replace").splitlines()[: 4 * _MAX_PEER_LIST]:
            text, _, addr_text = line.partition(" ")
            try:
                other = PeerId.from_string(text)
                addr = multiaddr.Multiaddr(addr_text)
            except Exception:
                continue
            if other == self._peer:
                continue
            # Addresses are not signed here; dialling checks the peer id (Noise), so a wrong
            # address costs a failed dial and nothing else.
            store.add_addrs(ID(other.raw), [addr], int(_ADDR_TTL))
            self._note_peer(other)
            learned += 1
        self.stats.inc("peer_list.learned", learned)

    def _note_peer(self, peer: PeerId) -> None:
        if peer not in self._known and peer != self._peer:
            if len(self._known) >= 100_000:  # bounded; forgetting only costs an announcement
                self._known.clear()
            self._known.add(peer)
            self._announce_wanted.set()

    async def _start_peer_exchange(self, nursery: trio.Nursery, pubsub: Pubsub) -> None:
        subscription = await pubsub.subscribe(PEER_EXCHANGE_TOPIC)
        nursery.start_soon(self._read_announcements, subscription)
        nursery.start_soon(self._announce_loop, pubsub)

    async def _announce_loop(self, pubsub: Pubsub) -> None:
        """Announce our addresses on a schedule that backs off from 0.5 s to
        ``announce_interval``, and soon after meeting a new peer (at most once a second, so a
        swarm forming does not flood itself: every announcement reaches every node)."""
        pause = 0.5
        last = -math.inf
        while True:
            with trio.move_on_after(pause):
                await self._announce_wanted.wait()
                # let the new peer's subscriptions arrive, and coalesce bursts of new peers
                await trio.sleep(max(0.2, last + 1.0 - trio.current_time()))
            self._announce_wanted = trio.Event()
            assert self._host is not None
            addrs = [str(addr) for addr in self._host.get_transport_addrs()]
            payload = "\n".join(addrs[:_MAX_ANNOUNCED_ADDRS]).encode()
            with suppress(Exception):
                await pubsub.publish(PEER_EXCHANGE_TOPIC, payload)
                self.stats.inc("peer_exchange.announced")
            last = trio.current_time()
            pause = min(pause * 2, self.config.announce_interval)

    async def _read_announcements(self, subscription: Any) -> None:
        import multiaddr
        from libp2p.peer.id import ID

        own = self._peer.raw
        async for message in subscription:
            origin = bytes(message.from_id)
            peer = _peer_id_of(origin)
            data = bytes(message.data)
            if peer is None or origin == own or len(data) > _MAX_ANNOUNCE_BYTES:
                continue
            addrs = []
            for line in data.decode("utf-8", "replace").splitlines()[:_MAX_ANNOUNCED_ADDRS]:
                try:
                    addr = multiaddr.Multiaddr(line)
                except Exception:
                    continue
                if "p2p" not in [proto.name for proto in addr.protocols()]:
                    addrs.append(addr)
            if addrs and self._host is not None:
                self._host.get_peerstore().add_addrs(ID(origin), addrs, int(_ADDR_TTL))
                self.stats.inc("peer_exchange.learned")
                self._note_peer(peer)


def _notifee(transport: Libp2pTransport) -> Any:
    """A network notifee that wakes the transport's tasks when a connection closes."""
    from libp2p.abc import INotifee

    class _Notifee(INotifee):
        async def opened_stream(self, network: Any, stream: Any) -> None:
            pass

        async def closed_stream(self, network: Any, stream: Any) -> None:
            pass

        async def connected(self, network: Any, conn: Any) -> None:
            pass

        async def disconnected(self, network: Any, conn: Any) -> None:
            event, transport._disconnected = transport._disconnected, trio.Event()
            event.set()
            with suppress(Exception):
                transport._on_disconnected(network, conn.muxed_conn.peer_id)

        async def listen(self, network: Any, multiaddr: Any) -> None:
            pass

        async def listen_close(self, network: Any, multiaddr: Any) -> None:
            pass

    return _Notifee()


def _check_topic(topic: str) -> None:
    if topic == PEER_EXCHANGE_TOPIC:
        raise ValueError(f"{PEER_EXCHANGE_TOPIC!r} is reserved for the transport's peer exchange")


async def _reset(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1.0), suppress(Exception):
        await stream.reset()

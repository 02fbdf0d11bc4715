"""Sending direct frames over libp2p: one long-lived outbound ``/axl/1.0.0`` stream per
destination peer, fed by a bounded queue and drained by a writer task that packs every queued
frame into one stream write (batching).

Fast path: when nothing is queued or being written on a link and its last write ended more
than ``FAST_PATH_GAP`` ago (sporadic traffic: requests, replies), the sender writes its frame to
the stream itself (no queue, no wake-up of the writer task). A sender that follows a write
closer than that is streaming, and queues, so that the writer batches. Order is kept: a frame
taken by the writer counts as pending until it is written, and writes hold the link's lock."""

from __future__ import annotations

import logging
import math
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import trio

from ._errors import PeerUnreachable, TransportClosed
from ._identity import PeerId
from ._libp2p_base import Link, TransportBase, peer_id_of, reset_stream, unblock_dial
from ._libp2p_config import PROTOCOL_ID
from ._libp2p_framing import encode_batch
from ._libp2p_select import ProtocolRefused, select
from ._transport import InboundFrame

if TYPE_CHECKING:
    from libp2p.abc import INetStream

logger = logging.getLogger("axl.libp2p")

FAST_PATH_GAP = 0.0002
"""Seconds since a link's last write after which a send may write directly (see above)."""


class WriterLink(Link):
    """A :class:`Link` with the state the send fast path needs."""

    __slots__ = ("direct_writes", "last_write", "lock", "pending", "stream")

    def __init__(self, peer: PeerId, capacity: int) -> None:
        super().__init__(peer, capacity)
        self.stream: INetStream | None = None
        self.lock = trio.Lock()  # held by whoever writes on the stream
        self.pending = 0  # frames queued or taken by the writer and not yet written
        self.direct_writes = 0  # fast-path writes: the link is in use even if the queue idles
        self.last_write = -math.inf  # when the last write on the stream ended (trio clock)


class LinksMixin(TransportBase):
    """The send side: links, writer tasks, batching."""

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
        assert isinstance(link, WriterLink)
        if (
            link.pending == 0
            and link.stream is not None
            and not link.lock.locked()
            and trio.current_time() - link.last_write > FAST_PATH_GAP
        ):
            await self._write_now(link, link.stream, frame)
            return
        link.pending += 1
        try:
            await link.send.send(frame)
        except BaseException as exc:
            link.pending -= 1
            if not isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
                raise
            if self._closed:
                raise TransportClosed("transport closed") from None
            raise PeerUnreachable(
                f"connection to {peer.short()} dropped: {link.error or 'closed'}"
            ) from None

    def prepare(self, peer: PeerId) -> None:
        """A hint that a frame for ``peer`` will follow soon: start its link now, so that
        connecting and opening the stream overlap what comes before that frame. The bus gives
        it when a request arrives from the peer that wrote it (before verifying and handling
        it), so a first reply no longer waits for its stream after the handler. Nothing when a
        link exists or is starting, for ourselves, for a peer in dial backoff, or once the
        transport is closing; a link that then carries nothing closes when it is idle."""
        if peer == self._peer or peer in self._links or self._closed or self._nursery is None:
            return
        if self._backoff.retry_at(peer) > trio.current_time():
            return
        self._start_link(peer)
        self.stats.inc("links.prepared")

    async def _write_now(self, link: WriterLink, stream: INetStream, frame: bytes) -> None:
        """The fast path: write one frame on the link's stream from the sender's task.
        Shielded, so a cancelled sender cannot cut a frame in half; bounded by the write
        timeout like the writer's writes."""
        link.lock.acquire_nowait()
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self.config.write_timeout
                await stream.write(encode_batch((frame,)))
            if scope.cancelled_caught:
                self._write_timed_out(link)
                link.scope.cancel()
                self.stats.inc("dropped.link_down")
                raise PeerUnreachable(f"{link.peer.short()} stopped reading")
        except PeerUnreachable:
            raise
        except Exception as exc:  # the stream broke: the link is dead
            link.error = link.error or PeerUnreachable(
                f"connection to {link.peer.short()} lost: {exc!r}"
            )
            link.scope.cancel()
            raise PeerUnreachable(f"connection to {link.peer.short()} lost: {exc!r}") from None
        finally:
            link.last_write = trio.current_time()
            link.lock.release()
        link.direct_writes += 1
        self.stats.inc("writes.direct")
        self.stats.inc("frames.sent")
        self.stats.inc("writes")

    def _write_timed_out(self, link: Link) -> None:
        write_timeout = self.config.write_timeout
        self.stats.inc("links.write_timeout")
        self._backoff.failed(link.peer, trio.current_time())
        link.error = PeerUnreachable(
            f"{link.peer.short()} stopped reading (a write took over {write_timeout} s)"
        )

    def _start_link(self, peer: PeerId) -> Link:
        if self._nursery is None:
            raise TransportClosed(f"transport of {self._peer.short()} is closed")
        link = WriterLink(peer, self.config.send_queue)
        self._links[peer] = link
        self._nursery.start_soon(self._run_link, link)
        return link

    async def _open_stream(self, peer: PeerId) -> INetStream:
        from libp2p.peer.id import ID
        from libp2p.peer.peerinfo import PeerInfo

        host = self._check_open()
        pid = ID(peer.raw)
        if host.get_network().connections.get(pid):
            try:
                return await self._new_link_stream(pid)
            except ProtocolRefused:
                raise  # the connection works: the peer does not serve /axl/1.0.0
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
            unblock_dial(host, pid)  # our backoff paces re-dials, not py-libp2p's 60 s
            await host.connect(PeerInfo(pid, addrs))
        return await self._new_link_stream(pid)

    async def _new_link_stream(self, pid: Any) -> INetStream:
        """A stream to ``pid`` (connected) negotiated to ``/axl/1.0.0`` in one round trip
        (:func:`axl._libp2p_select.select`); reset when the negotiation fails."""
        stream = await self._check_open().get_network().new_stream(pid)
        try:
            await select(stream, PROTOCOL_ID)
        except BaseException:
            await reset_stream(stream)
            raise
        return stream

    async def _run_link(self, link: Link) -> None:
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
                assert isinstance(link, WriterLink)
                link.stream = stream
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
            if isinstance(link, WriterLink):
                link.stream = None
            if self._links.get(peer) is link:
                del self._links[peer]
            # Close first: senders blocked on a full queue then fail with PeerUnreachable
            # instead of slipping their frame into a queue nobody will write.
            dropped = link.receive.statistics().current_buffer_used
            link.receive.close()
            if dropped:
                self.stats.inc("dropped.link_down", dropped)
            if stream is not None:
                await reset_stream(stream)

    def _on_disconnected(self, network: Any, pid: Any) -> None:
        """A connection closed: if it was the peer's last, its link is dead (py-libp2p does not
        always wake a writer blocked on a connection that went away)."""
        if network.connections.get(pid):
            return
        peer = peer_id_of(pid.to_bytes())
        link = self._links.get(peer) if peer is not None else None
        if link is not None and link.ready.is_set():
            link.error = PeerUnreachable(f"connection to {link.peer.short()} closed")
            link.scope.cancel()
            self.stats.inc("links.disconnected")

    async def _write_loop(self, link: WriterLink, stream: INetStream) -> None:
        receive = link.receive
        limit = self.config.max_batch_bytes
        write_timeout = self.config.write_timeout
        while True:
            frame: bytes | None = None
            direct_writes = link.direct_writes
            with trio.move_on_after(self.config.link_idle_timeout):
                frame = await receive.receive()
            if frame is None:
                if link.direct_writes != direct_writes or link.lock.locked():
                    continue  # in use on the fast path
                try:
                    frame = receive.receive_nowait()
                except trio.WouldBlock:
                    # Idle: retire the link now, synchronously, so that no sender can queue
                    # on it any more (the next send opens a fresh one).
                    if self._links.get(link.peer) is link:
                        del self._links[link.peer]
                    link.stream = None  # no fast-path write on a closing stream
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
            data = encode_batch(batch)
            async with link.lock:  # after a fast-path write in progress, never before it
                try:
                    with trio.fail_after(write_timeout):
                        await stream.write(data)
                except trio.TooSlowError:
                    self._write_timed_out(link)
                    self.stats.inc("dropped.link_down", len(batch))
                    return
                finally:
                    link.pending -= len(batch)
                    link.last_write = trio.current_time()
            self.stats.inc("frames.sent", len(batch))
            self.stats.inc("writes")

    async def _watch_outbound(
        self, link: Link, stream: INetStream, scope: trio.CancelScope
    ) -> None:
        """The peer never writes on our outbound stream: any read result means it is gone."""
        try:
            await stream.read(1)
            link.error = PeerUnreachable(f"{link.peer.short()} wrote on its inbound stream")
        except Exception as exc:
            link.error = PeerUnreachable(f"connection to {link.peer.short()} lost: {exc!r}")
        scope.cancel()

"""Sending direct frames over libp2p: one long-lived outbound ``/axl/1.0.0`` stream per
destination peer, fed by a bounded queue and drained by a writer task that packs every queued
frame into one stream write (batching)."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import trio

from ._errors import PeerUnreachable, TransportClosed
from ._identity import PeerId
from ._libp2p_base import Link, TransportBase, peer_id_of
from ._libp2p_config import PROTOCOL_ID
from ._libp2p_framing import encode_batch
from ._transport import InboundFrame

if TYPE_CHECKING:
    from libp2p.abc import INetStream

logger = logging.getLogger("axl.libp2p")


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
        try:
            await link.send.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self._closed:
                raise TransportClosed("transport closed") from None
            raise PeerUnreachable(
                f"connection to {peer.short()} dropped: {link.error or 'closed'}"
            ) from None

    def _start_link(self, peer: PeerId) -> Link:
        if self._nursery is None:
            raise TransportClosed(f"transport of {self._peer.short()} is closed")
        link = Link(peer, self.config.send_queue)
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
        peer = peer_id_of(pid.to_bytes())
        link = self._links.get(peer) if peer is not None else None
        if link is not None and link.ready.is_set():
            link.error = PeerUnreachable(f"connection to {link.peer.short()} closed")
            link.scope.cancel()
            self.stats.inc("links.disconnected")

    async def _write_loop(self, link: Link, stream: INetStream) -> None:
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
        self, link: Link, stream: INetStream, scope: trio.CancelScope
    ) -> None:
        """The peer never writes on our outbound stream: any read result means it is gone."""
        try:
            await stream.read(1)
            link.error = PeerUnreachable(f"{link.peer.short()} wrote on its inbound stream")
        except Exception as exc:
            link.error = PeerUnreachable(f"connection to {link.peer.short()} lost: {exc!r}")
        scope.cancel()

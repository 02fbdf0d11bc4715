"""Receiving direct frames over libp2p, under limits: inbound streams per peer, a per-peer
rate limit (token bucket), the frame size cap, and bans for peers that break the framing."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import TYPE_CHECKING

import trio

from ._errors import DecodeError, FrameTooLarge, PeerUnreachable
from ._identity import PeerId
from ._libp2p_base import TransportBase, peer_id_of, reset_stream
from ._libp2p_config import _READ_CHUNK
from ._libp2p_framing import FrameDecoder, TokenBucket
from ._transport import InboundFrame

if TYPE_CHECKING:
    from libp2p.abc import INetStream

logger = logging.getLogger("axl.libp2p")


class LimitsMixin(TransportBase):
    """The receive side of direct frames, with its limits and bans."""

    async def _handle_inbound(self, stream: INetStream) -> None:
        remote = stream.muxed_conn.peer_id
        peer = peer_id_of(remote.to_bytes())
        now = trio.current_time()
        if peer is None or self._closed:
            await reset_stream(stream)
            return
        banned_until = self._banned.get(peer)
        if banned_until is not None:
            if banned_until > now:
                self.stats.inc("inbound.refused_banned")
                await reset_stream(stream)
                return
            del self._banned[peer]
        open_streams = self._inbound_streams.get(peer, 0)
        if open_streams >= self.config.max_inbound_streams:
            self.stats.inc("inbound.refused_streams")
            await reset_stream(stream)
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
            await reset_stream(stream)
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
        await reset_stream(stream)
        link = self._links.get(peer)
        if link is not None:
            link.error = PeerUnreachable(f"{peer.short()} was cut off for misbehaving")
            link.scope.cancel()
        if self._host is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0), suppress(Exception):
                await self._host.disconnect(ID(peer.raw))

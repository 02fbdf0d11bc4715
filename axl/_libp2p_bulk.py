"""Bulk streams over libp2p: blobs travel on their own ``/axl/blob/1.0.0`` streams.

Each bulk stream is a separate yamux stream with its own flow-control window, so a blob
transfer never queues behind (or in front of) the small frames of ``/axl/1.0.0`` on the same
connection. Inbound bulk streams wait in a bounded backlog for ``accept_bulk``; a full
backlog, a closed transport or a peer banned for breaking the framing gets a reset.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from ._errors import PeerUnreachable, TransportClosed
from ._identity import PeerId
from ._libp2p_base import TransportBase, peer_id_of, reset_stream
from ._libp2p_noise import MAX_PLAINTEXT

if TYPE_CHECKING:
    from libp2p.abc import INetStream

BULK_PROTOCOL_ID = "/axl/blob/1.0.0"
BULK_BACKLOG = 64
# A stream write larger than this goes to yamux in pieces of this size: each piece is one
# yamux DATA frame (12-byte header) that fits one Noise transport message (65,519 bytes of
# plaintext). py-libp2p cuts a large write into frames of 65,536 bytes, which Noise must send
# as two messages each (the second of 17 bytes): twice the seals, sends, reads and opens.
WRITE_PIECE = MAX_PLAINTEXT - 12
WINDOW_ROUNDS = 8

logger = logging.getLogger("axl.libp2p")


class Libp2pBulkStream:
    """A ``BulkStream`` over one py-libp2p stream: its errors become PeerUnreachable."""

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream

    async def send_all(self, data: bytes | memoryview) -> None:
        """Write ``data`` in pieces of at most ``WRITE_PIECE`` bytes (see there)."""
        stream = self._stream
        try:
            if len(data) <= WRITE_PIECE:
                await stream.write(data)  # type: ignore[arg-type]  # copied into its frame
                return
            view = memoryview(data)
            muxed = getattr(stream, "muxed_stream", None)
            for start in range(0, len(view), WRITE_PIECE):
                piece = view[start : start + WRITE_PIECE]
                if getattr(muxed, "send_window", len(piece)) < len(piece):
                    await _window_for(muxed, len(piece))
                await stream.write(piece)  # type: ignore[arg-type]
        except Exception as exc:  # StreamReset, StreamClosed, StreamError, connection lost
            raise PeerUnreachable(f"bulk stream broke: {exc!r}") from None

    async def receive_some(self, max_bytes: int) -> bytes:
        from libp2p.network.stream.exceptions import StreamEOF

        try:
            data: bytes = await self._stream.read(max_bytes)
        except StreamEOF:
            return b""
        except Exception as exc:
            raise PeerUnreachable(f"bulk stream broke: {exc!r}") from None
        return data

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            try:
                await self._stream.close()
            except Exception:
                await reset_stream(self._stream)


async def _window_for(muxed: Any, size: int) -> None:
    """Give the scheduler a few rounds to let a window update for ``size`` bytes in.

    The yamux write sends what its send window allows and then, at a window of 0, waits for
    credit (py-libp2p's polled every 10 ms, so a writer a whole window ahead of its reader
    stalled 10 ms; the lean session now wakes it at once: ``axl._libp2p_yamux.window_grew``).
    A piece written into a window too small for it goes out as two frames, two Noise
    messages; an update already on its way is usually handled within a few scheduling
    rounds, so the piece waits for it first. If none comes, the write goes on as before."""
    for _ in range(WINDOW_ROUNDS):
        await trio.lowlevel.checkpoint()
        if muxed.send_window >= size or muxed.closed:
            return


class BulkMixin(TransportBase):
    """``open_bulk`` / ``accept_bulk`` of :class:`~axl.Libp2pTransport`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bulk_send, self._bulk_receive = trio.open_memory_channel[
            tuple[PeerId, Libp2pBulkStream]
        ](BULK_BACKLOG)

    def _close_bulk(self) -> None:
        self._bulk_send.close()

    async def _handle_bulk(self, stream: INetStream) -> None:
        peer = peer_id_of(stream.muxed_conn.peer_id.to_bytes())
        banned_until = self._banned.get(peer) if peer is not None else None
        if (
            peer is None
            or self._closed
            or (banned_until is not None and banned_until > trio.current_time())
        ):
            await reset_stream(stream)
            return
        try:
            self._bulk_send.send_nowait((peer, Libp2pBulkStream(stream)))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.stats.inc("bulk.refused_backlog")
            await reset_stream(stream)
            return
        self.stats.inc("bulk.accepted")

    async def accept_bulk(self) -> tuple[PeerId, Libp2pBulkStream]:
        """The next inbound bulk stream; raises :class:`TransportClosed` once closed."""
        try:
            return await self._bulk_receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(f"transport of {self._peer.short()} is closed") from None

    async def open_bulk(self, peer: PeerId) -> Libp2pBulkStream:
        """A bulk stream to ``peer`` (dialling it if needed); raises :class:`PeerUnreachable`."""
        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID
        from libp2p.peer.peerinfo import PeerInfo

        host = self._check_open()
        pid = ID(peer.raw)
        try:
            with trio.fail_after(self.config.dial_timeout):
                if not host.get_network().connections.get(pid):
                    try:
                        addrs = host.get_peerstore().addrs(pid)
                    except Exception:  # PeerStoreError: unknown or expired
                        addrs = []
                    if not addrs:
                        raise PeerUnreachable(f"no known address for {peer.short()}")
                    await host.connect(PeerInfo(pid, addrs))
                stream = await host.new_stream(pid, [TProtocol(BULK_PROTOCOL_ID)])
        except PeerUnreachable:
            raise
        except trio.TooSlowError:
            raise PeerUnreachable(f"opening a bulk stream to {peer.short()} timed out") from None
        except Exception as exc:
            raise PeerUnreachable(f"no bulk stream to {peer.short()}: {exc!r}") from None
        self.stats.inc("bulk.opened")
        return Libp2pBulkStream(stream)

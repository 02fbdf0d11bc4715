"""Gossip RPC writes in one step: yamux DATA frame, Noise seal and socket send, no layers.

A gossip RPC written the py-libp2p way goes down ten awaiting layers: ``Pubsub.write_msg``
(length prefix), ``NetStream.write`` (state lock), ``YamuxStream.write`` (window),
``Yamux._write_frame`` (frame lock), the Noise session's ``write`` (seal), ``RawConnection``,
``TrioTCPStream.write`` (write lock), trio's ``SocketStream.send_all`` (conflict detector,
error translation) and the socket's ``send`` (a cancellation check, the system call and a
yield to the scheduler). Every layer is a coroutine frame, most take a lock, and the profile
of a gossiping node put a quarter of its CPU there.

:class:`FlatWriter` does what those layers do for the common case, synchronously: when the
stream is open for writing, the frame fits the send window, and every lock on the way (the
stream's state lock, its window and writer locks, the session's frame lock, the TCP stream's
write lock, trio's send conflict detector) is free, it takes the frame and TCP locks, charges
the window, packs the yamux header, seals the frame with the session's cipher and hands the
bytes to the non-blocking socket. What the socket does not take at once (a full send buffer)
is sent with ``send_all`` while both locks are still held, so no other writer's frame can come
between, and the Noise nonces stay in step. In every other case it returns ``False`` before
touching anything, and the caller takes py-libp2p's path, which waits as it always did. The
bytes on the wire are the same either way (tests compare them, and a stock py-libp2p peer
reads them).
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import trio

from ._stats import Counters

_YAMUX_LOGGER = logging.getLogger("libp2p.stream_muxer.yamux")


class FlatWriter:
    """Writes on one gossip stream (a py-libp2p ``NetStream`` over our lean yamux and Noise
    sessions and a TCP socket); built by :func:`flat_writer`."""

    __slots__ = (
        "_conn",
        "_data_type",
        "_header",
        "_largest",
        "_muxed",
        "_net",
        "_open_states",
        "_seal",
        "_sock",
        "_stats",
        "_tcp",
    )

    def __init__(
        self, net: Any, muxed: Any, conn: Any, seal: Any, tcp: Any, stats: Counters
    ) -> None:
        from libp2p.network.stream.net_stream import StreamState
        from libp2p.stream_muxer.yamux import yamux

        self._net = net
        self._muxed = muxed
        self._conn = conn
        self._seal = seal
        self._tcp = tcp
        self._stats = stats
        self._sock = tcp.stream.socket
        self._header = struct.Struct(yamux.YAMUX_HEADER_FORMAT)  # the same frames as py-libp2p
        self._data_type = yamux.TYPE_DATA
        self._largest = yamux.MAX_MESSAGE_SIZE - yamux.HEADER_SIZE
        self._open_states = (StreamState.OPEN, StreamState.CLOSE_READ)

    def ready(self, size: int) -> bool:
        """Whether :meth:`write` of ``size`` bytes would go the flat way now."""
        muxed = self._muxed
        return (
            0 < size <= self._largest
            and size <= muxed.send_window
            and self._net._state in self._open_states
            and not self._net._state_lock.locked()
            and not (muxed.send_closed or muxed.closed)
            and not muxed.window_lock.locked()
            and muxed.rw_lock._writer_lock.value > 0
            and not self._conn._write_lock.locked()
            and not self._conn._write_lock._lot
            and not self._tcp.write_lock.locked()
            and not self._tcp.write_lock._lot
            and not self._tcp.stream._send_conflict_detector._held
            and not self._sock.did_shutdown_SHUT_WR
            and not _YAMUX_LOGGER.isEnabledFor(logging.DEBUG)
        )

    async def write(self, data: bytes) -> bool:
        """Write ``data`` as one yamux DATA frame; ``False`` (nothing done) when the flat way
        does not apply. Raises what py-libp2p's TCP stream raises when the connection broke
        (``ConnectionClosedError``), and ``trio.Cancelled`` before sealing anything."""
        size = len(data)
        if not self.ready(size):
            return False
        # A cancelled writer stops before sealing (a sealed message never sent would put the
        # Noise nonces out of step); from here to the send nothing yields.
        await trio.lowlevel.checkpoint_if_cancelled()
        muxed, frame_lock, tcp_lock = self._muxed, self._conn._write_lock, self._tcp.write_lock
        frame_lock.acquire_nowait()
        try:
            tcp_lock.acquire_nowait()
            try:
                muxed.send_window -= size
                header = self._header.pack(0, self._data_type, 0, muxed.stream_id, size)
                sealed = self._seal(header + data)
                await self._send(sealed)
            finally:
                tcp_lock.release()
        finally:
            frame_lock.release()
        return True

    async def _send(self, sealed: bytes) -> None:
        try:
            sent = self._sock._sock.send(sealed)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise _closed(exc) from exc
        if sent == len(sealed):
            return
        self._stats.inc("gossip.flat_partial")
        try:  # the socket's buffer is full: the rest waits its turn, locks still held
            await self._tcp.stream.send_all(memoryview(sealed)[sent:])
        except trio.BrokenResourceError as exc:
            raise _closed(exc) from exc


def _closed(exc: BaseException) -> Exception:
    """py-libp2p's ``ConnectionClosedError`` for a failed send (imported only then: an import
    statement on the per-RPC path costs a call under the deferred imports)."""
    from libp2p.io.exceptions import ConnectionClosedError

    return ConnectionClosedError(f"TCP send failed: {exc!r}", transport="tcp")


def flat_writer(stream: Any, stats: Counters) -> FlatWriter | None:
    """A :class:`FlatWriter` for ``stream`` (partial sends counted in ``stats``) when it runs
    over the layers it knows (a ``NetStream`` on a yamux stream whose session has our fast
    locks, a lean Noise session, and a py-libp2p TCP stream with our fast locks over a trio
    socket), else ``None``."""
    from libp2p.io.trio import TrioTCPStream
    from libp2p.network.connection.raw_connection import RawConnection
    from libp2p.network.stream.net_stream import NetStream
    from libp2p.stream_muxer.yamux.yamux import YamuxStream

    from ._libp2p_locks import FastLock
    from ._libp2p_noise import TransportCipher

    if type(stream) is not NetStream:
        return None
    muxed = stream.muxed_stream
    if not isinstance(muxed, YamuxStream):
        return None
    conn: Any = muxed.conn
    session = getattr(conn, "secured_conn", None)
    cipher = getattr(session, "send", None)
    raw = getattr(session, "raw", None)
    if not isinstance(cipher, TransportCipher) or type(raw) is not RawConnection:
        return None
    tcp = raw.stream
    if type(tcp) is not TrioTCPStream or not isinstance(tcp.stream, trio.SocketStream):
        return None
    locks = (stream._state_lock, muxed.window_lock, conn._write_lock, tcp.write_lock)
    if not all(isinstance(lock, FastLock) for lock in locks):
        return None
    return FlatWriter(stream, muxed, conn, cipher.seal, tcp, stats)

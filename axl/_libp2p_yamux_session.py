"""A yamux session whose receive loop does only what a frame needs; same frames, same state.

py-libp2p's ``Yamux.handle_incoming`` formats two to four debug f-strings per frame whether
or not debug logging is on, takes the streams lock (and a stream's window lock) per frame, and
its ``read_stream`` formats three more per stream read. :class:`LeanYamux` (built by
:func:`lean_yamux_class`) is py-libp2p's ``Yamux`` with both replaced:

* frames are parsed from the session's plaintext buffer when it holds them (a
  :class:`~axl._libp2p_noise.LeanNoiseSession` does), with a checkpoint every
  :data:`YIELD_EVERY` frames so a burst cannot hold the scheduler; otherwise read as
  py-libp2p reads them (a DATA body with its read timeout);
* a DATA body goes straight into the stream's buffer and wakes its reader; window updates,
  SYN / ACK / FIN / RST, pings and GoAway keep py-libp2p's handling (same state, same replies);
* a stream's reader may attach a *sink* (:meth:`LeanYamux.attach_sink`): its DATA bodies are
  then offered to that plain function in this loop while nothing is buffered for the stream
  (the gossip streams' RPCs are handled so, see :mod:`axl._libp2p_inline`);
* the stream and window locks are not taken: no other holder awaits while holding them
  (``Yamux.close`` does, and clears every stream after), so nothing can interleave.

Hostile input has a defined, counted outcome (``yamux.refused_<reason>``): a header with a
version other than 0 or an unknown type (``malformed``), a DATA frame announcing more than
the stream's receive window (``window_exceeded``: the window bounds what a peer can make us
buffer, where py-libp2p logged and buffered it anyway) or, for a stream we do not know, more
than the largest window (``oversized``) each end the session with a GoAway (protocol error),
as go-yamux does. DATA for a stream we no longer know (closed or reset meanwhile) is read,
dropped and counted (``yamux.unknown_stream``). A connection that closes or breaks ends the
session as in py-libp2p; any other failure (a Noise message failing authentication, say)
ends it too, counted (``yamux.failed``), never the host.

:func:`install_lean_yamux` makes one swarm build :class:`LeanYamux` sessions (py-libp2p's muxer
negotiation constructs its own ``Yamux`` by name, so the class cannot be passed as an option);
other hosts in the process, stock ones included, keep py-libp2p's.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from types import MethodType
from typing import TYPE_CHECKING, Any

import trio

from ._stats import Counters

if TYPE_CHECKING:
    from libp2p.abc import IMuxedConn, ISecureConn
    from libp2p.peer.id import ID

logger = logging.getLogger("axl.libp2p")

HEADER = struct.Struct("!BBHII")
HEADER_SIZE = 12
YIELD_EVERY = 64
"""Frames handled from the buffer between two checkpoints."""
DISCARD_CHUNK = 1 << 16
TYPE_DATA, TYPE_WINDOW_UPDATE, TYPE_PING, TYPE_GO_AWAY = 0, 1, 2, 3
FLAG_SYN, FLAG_ACK, FLAG_FIN, FLAG_RST = 1, 2, 4, 8
GO_AWAY_PROTOCOL_ERROR = 1


Sink = Callable[[bytes], bool]
"""A stream's inline consumer: takes a DATA body, returns whether it consumed it."""


class Refused(Exception):
    """A frame that ends the session: ``reason`` names the counter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def lean_yamux_class() -> type[Any]:
    """The :class:`LeanYamux` class (built lazily: libp2p imports slowly)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _build_class()
    return _CLASS


_CLASS: type[Any] | None = None


def install_lean_yamux(swarm: Any, stats: Counters) -> None:
    """Make ``swarm``'s muxer negotiation build :class:`LeanYamux` sessions for ``/yamux/1.0.0``
    (counting into ``stats``); other muxers are py-libp2p's."""
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID

    lean = lean_yamux_class()
    multistream = swarm.upgrader.muxer_multistream

    async def new_conn(self: Any, conn: ISecureConn, peer_id: ID) -> IMuxedConn:
        protocol, transport_class = await self._selector.select(
            conn, conn.is_initiator, self.negotiate_timeout
        )
        if protocol == PROTOCOL_ID:
            muxed = lean(conn, peer_id, is_initiator=conn.is_initiator, stats=stats)
        else:
            muxed = transport_class(conn, peer_id)
        annotated: IMuxedConn = self._annotate_connection(muxed, conn, protocol)
        return annotated

    multistream.new_conn = MethodType(new_conn, multistream)


def _build_class() -> type[Any]:
    from libp2p.io.exceptions import IncompleteReadError, IOException
    from libp2p.io.utils import read_exactly
    from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamReset
    from libp2p.stream_muxer.yamux import yamux
    from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

    from ._libp2p_yamux import window_grew, window_update_due

    max_window = yamux.MAX_WINDOW_SIZE

    class LeanYamux(Yamux):
        """py-libp2p's ``Yamux`` with a lean receive loop and stream read (module docstring)."""

        def __init__(self, *args: Any, stats: Counters | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.stats = stats if stats is not None else Counters()
            self.sinks: dict[int, Sink] = {}
            """Per stream id, a function offered the stream's DATA bodies in the reader
            (:meth:`attach_sink`)."""

        # -- inline consumers -------------------------------------------------------------

        def attach_sink(self, stream_id: int, sink: Sink) -> None:
            """Offer each DATA body of the stream to ``sink`` in the session's reader, while
            nothing is buffered for the stream: a sink that returns True has consumed it (the
            bytes count as read: credit is owed to the sender, and the stream's reader is
            woken only once a window update is due); False buffers the bytes and wakes the
            stream's reader, as without a sink. The sink must not block (it is a plain
            function) and must not raise: the session would end (``yamux.failed``)."""
            self.sinks[stream_id] = sink

        def detach_sink(self, stream_id: int) -> None:
            self.sinks.pop(stream_id, None)

        def stream_idle(self, stream_id: int) -> bool:
            """True while the stream is open for receiving and has nothing buffered: its
            reader has nothing to read and no end to see."""
            stream = self.streams.get(stream_id)
            buffer = self.stream_buffers.get(stream_id)
            return (
                stream is not None
                and buffer is not None
                and not buffer
                and not self.event_shutting_down.is_set()
                and not stream.recv_closed
                and not stream.reset_received
                and not stream.closed
            )

        async def wait_stream(self, stream_id: int) -> None:
            """Wait until the stream's reader is woken (data buffered, credit due, an end,
            or a sink's call), as :meth:`read_stream` waits."""
            event = self.stream_events.get(stream_id)
            if event is None:
                await trio.lowlevel.checkpoint()
                return
            await event.wait()
            if self.stream_events.get(stream_id) is event:
                self.stream_events[stream_id] = trio.Event()

        def wake_stream(self, stream_id: int) -> None:
            """Wake the stream's reader (from a sink)."""
            event = self.stream_events.get(stream_id)
            if event is not None:
                event.set()

        # -- receiving --------------------------------------------------------------------

        async def handle_incoming(self) -> None:
            try:
                await self._receive_frames()
            except Refused as refused:
                self.stats.inc(f"yamux.refused_{refused.reason}")
                logger.info("yamux session with %s ended: %s", self.peer_id, refused.reason)
                if not self.event_shutting_down.is_set():
                    with trio.move_on_after(1.0):
                        try:
                            await self._write_frame(
                                HEADER.pack(0, TYPE_GO_AWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR)
                            )
                        except Exception as exc:
                            logger.debug("GoAway to %s failed: %r", self.peer_id, exc)
            except (
                IncompleteReadError,
                IOException,
                OSError,
                trio.TooSlowError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ):
                pass  # the connection closed, broke or stalled mid-frame: as py-libp2p, close
            except Exception as exc:
                if not self.event_shutting_down.is_set():
                    self.stats.inc("yamux.failed")
                    logger.debug("yamux session with %s failed: %r", self.peer_id, exc)
            self.event_shutting_down.set()
            await self._cleanup_on_error()

        async def _read(self, n: int) -> bytes:
            """``n`` bytes from the session, from its buffer when it holds them."""
            conn = self.secured_conn
            take = getattr(conn, "take_buffered", None)
            if take is not None:
                data: bytes | None = take(n)
                if data is not None:
                    return data
            fill = getattr(conn, "fill", None)
            with trio.fail_after(yamux._yamux_data_read_timeout()):
                if fill is None or take is None:
                    read: bytes = await read_exactly(conn, n)
                    return read
                while True:
                    data = take(n)
                    if data is not None:
                        return data
                    await fill()  # n is at most a window (refused above it): bounded

        async def _receive_frames(self) -> None:
            conn = self.secured_conn
            take = getattr(conn, "take_buffered", None)
            fill = getattr(conn, "fill", None) if take is not None else None
            unpack = HEADER.unpack
            streams, buffers, events = self.streams, self.stream_buffers, self.stream_events
            sinks = self.sinks
            served = 0
            while not self.event_shutting_down.is_set():
                header = take(HEADER_SIZE) if take is not None else None
                if header is None:
                    served = 0
                    if fill is None:
                        header = await read_exactly(conn, HEADER_SIZE)  # EOF: IncompleteReadError
                    else:
                        assert take is not None
                        while (header := take(HEADER_SIZE)) is None:
                            await fill()  # one socket read; EOF: IncompleteReadError
                else:
                    served += 1
                    if served >= YIELD_EVERY:
                        served = 0
                        await trio.lowlevel.checkpoint()
                version, typ, flags, sid, length = unpack(header)
                if version != 0 or typ > TYPE_GO_AWAY:
                    raise Refused("malformed")
                if typ == TYPE_DATA and not flags & (FLAG_SYN | FLAG_ACK):
                    stream = streams.get(sid)
                    if stream is None:
                        await self._discard(length)
                        continue
                    if length > stream.recv_window:
                        raise Refused("window_exceeded")
                    wake = True
                    if length:
                        data = await self._read(length)
                        buffer = buffers.get(sid)  # the stream may have closed meanwhile
                        if buffer is None:
                            self.stats.inc("yamux.unknown_stream")
                            continue
                        stream.recv_window -= length
                        sink = sinks.get(sid) if sinks else None
                        if sink is not None and not buffer and sink(data):
                            wake = window_update_due(stream)  # consumed: only credit owed
                        else:
                            buffer += data
                    if wake:
                        event = events.get(sid)
                        if event is not None:
                            event.set()
                    if flags & (FLAG_FIN | FLAG_RST):
                        self._closing_flags(stream, flags)
                elif typ == TYPE_WINDOW_UPDATE and not flags & (FLAG_SYN | FLAG_ACK):
                    stream = streams.get(sid)
                    if stream is not None:
                        stream.send_window += length
                        window_grew(stream)
                        if flags & (FLAG_FIN | FLAG_RST):
                            self._closing_flags(stream, flags)
                elif typ == TYPE_PING:
                    await self._ping(flags, length)
                elif typ == TYPE_GO_AWAY:
                    return
                elif flags & FLAG_SYN:
                    await self._syn(typ, flags, sid, length)
                else:
                    await self._ack(typ, flags, sid, length)

        async def _discard(self, length: int) -> None:
            """Drop a DATA body for a stream we do not know (counted)."""
            if length > max_window:
                raise Refused("oversized")
            self.stats.inc("yamux.unknown_stream")
            while length:
                step = min(length, DISCARD_CHUNK)
                await self._read(step)
                length -= step

        def _closing_flags(self, stream: Any, flags: int) -> None:
            """FIN / RST on a DATA or WINDOW_UPDATE frame, as py-libp2p handles them."""
            if flags & FLAG_FIN:
                stream.recv_closed = True
                if stream.send_closed:
                    stream.closed = True
            if flags & FLAG_RST:
                stream.closed = True
                stream.reset_received = True
            event = self.stream_events.get(stream.stream_id)
            if event is not None:
                event.set()
            if stream.closed:
                self._finalize_stream_locked(stream, fully_closed=True)

        async def _syn(self, typ: int, flags: int, sid: int, length: int) -> None:
            """A stream opened by the peer (py-libp2p's handling: ACK it, or RST a duplicate)."""
            payload = b""
            if typ == TYPE_DATA and length:
                if length > yamux.DEFAULT_WINDOW_SIZE:  # a new stream's window
                    raise Refused("window_exceeded")
                payload = await self._read(length)
            if sid in self.streams:
                await self._write_frame(HEADER.pack(0, TYPE_WINDOW_UPDATE, FLAG_RST, sid, 0))
                return
            stream = YamuxStream(sid, self, False)
            self.streams[sid] = stream
            self.stream_buffers[sid] = bytearray(payload)
            self.stream_events[sid] = event = trio.Event()
            if typ == TYPE_WINDOW_UPDATE:
                stream.send_window += length
            elif payload:
                stream.recv_window -= len(payload)
                event.set()
            if flags & (FLAG_FIN | FLAG_RST):
                self._closing_flags(stream, flags)
            if not flags & FLAG_RST:  # a stream reset on arrival is delivered, not ACKed
                await self._write_frame(HEADER.pack(0, TYPE_WINDOW_UPDATE, FLAG_ACK, sid, 0))
            await self.new_stream_send_channel.send(stream)

        async def _ack(self, typ: int, flags: int, sid: int, length: int) -> None:
            """The peer's ACK of a stream we opened (it may carry data or a window delta)."""
            stream = self.streams.get(sid)
            if stream is None:
                if typ == TYPE_DATA:
                    await self._discard(length)
                return
            if typ == TYPE_WINDOW_UPDATE:
                stream.send_window += length
                window_grew(stream)
            elif length:
                if length > stream.recv_window:
                    raise Refused("window_exceeded")
                data = await self._read(length)
                buffer = self.stream_buffers.get(sid)
                if buffer is None:
                    self.stats.inc("yamux.unknown_stream")
                    return
                buffer += data
                stream.recv_window -= length
                event = self.stream_events.get(sid)
                if event is not None:
                    event.set()
            if flags & (FLAG_FIN | FLAG_RST):
                self._closing_flags(stream, flags)

        async def _ping(self, flags: int, value: int) -> None:
            if flags & FLAG_SYN:
                await self._write_frame(HEADER.pack(0, TYPE_PING, FLAG_ACK, 0, value))
            elif flags & FLAG_ACK:
                rtt = trio.current_time() - self._ping_sent_time
                self._rtt = rtt if self._rtt == 0.0 else (self._rtt + rtt) / 2
                self._ping_event.set()

        # -- reading a stream -------------------------------------------------------------

        async def read_stream(self, stream_id: int, n: int = -1) -> bytes:
            """py-libp2p's ``read_stream`` (same results and errors) without its lock and
            per-call debug formatting: nothing in it awaits but the wait for data."""
            if n is None:
                n = -1
            while True:
                stream = self.streams.get(stream_id)
                if stream is None:
                    raise MuxedStreamEOF("Stream closed")
                if self.event_shutting_down.is_set():
                    raise MuxedStreamEOF("Connection shut down")
                buffer = self.stream_buffers.get(stream_id)
                if buffer is None:
                    if stream.reset_received:
                        raise MuxedStreamReset("Stream was reset")
                    raise MuxedStreamEOF("Stream buffer closed")
                if buffer and (stream.recv_closed or not stream.reset_received):
                    if n == -1 or n >= len(buffer):
                        data = bytes(buffer)
                        buffer.clear()
                    else:
                        data = bytes(buffer[:n])
                        del buffer[:n]
                    if stream.closed:
                        self._finalize_stream_locked(stream, fully_closed=True)
                    return data
                if stream.reset_received:
                    raise MuxedStreamReset("Stream was reset")
                if stream.recv_closed:
                    raise MuxedStreamEOF("Stream is closed for receiving")
                if stream.closed:
                    raise MuxedStreamReset("Stream is reset or closed")
                event = self.stream_events.get(stream_id)
                if event is None:
                    raise MuxedStreamEOF("Stream was removed")
                await event.wait()
                self.stream_events[stream_id] = trio.Event()

    return LeanYamux

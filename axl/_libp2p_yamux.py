"""Yamux receive-window updates as go-yamux sends them: one per half window consumed; and
frame writes without py-libp2p's per-frame debug formatting.

py-libp2p 0.8.1 sends a ``WINDOW_UPDATE`` frame after every stream read that consumed data.
A GossipSub RPC is read in three (two varint bytes, then the body), so every RPC received
cost three more frames, each Noise-encrypted, written, read, decrypted and handled by the
peer: three quarters of the frames of a busy swarm, and most of an idle host's wake-ups.

:func:`install_batched_window_updates` wraps the stream's update method: a read that leaves
less than half the target window uncredited sends nothing (the credit is still owed: the
receive window has shrunk by what arrived); once half or more is owed, py-libp2p's own logic
runs and sends one update for all of it (its grow-to path, window auto-tuning included).
Flow control is unchanged: a sender stalls only when the reader has left a whole window
unread, and reading half of it releases the sender.

Per frame, py-libp2p also took four to six trio locks (each a trip through the scheduler even
when free) and a timeout scope per received DATA body. :func:`install_fast_paths` swaps the
muxer's, its streams' and their ``NetStream`` wrappers' locks for
:class:`axl._libp2p_locks.FastLock`; writes a stream's send
window covers, with nobody else writing or adjusting it, build their frame without the
stream's write and window locks (no await between the check and the debit, so nothing can
interleave); and a DATA body the Noise session already holds decrypted is taken without the
read timeout (it cannot block). Anything else takes py-libp2p's write, rebuilt here
(:func:`_credited_write`: the same frames, locks, checks and errors) so that a wait on a zero
send window ends when the lean session's reader credits the window (:func:`window_grew`), not
at py-libp2p's next 10 ms poll. Frames are unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

_INSTALLED = "_axl_batched_window_updates"
_FAST = "_axl_fast_paths"


def install_batched_window_updates() -> None:
    """Patch py-libp2p's ``YamuxStream`` once per process (idempotent)."""
    from libp2p.stream_muxer.yamux import yamux
    from libp2p.stream_muxer.yamux.yamux import YamuxStream

    if getattr(YamuxStream, _INSTALLED, False):
        return
    # py-libp2p reads both from the environment on every call (a visible share of a busy
    # host's samples); they are read once here.
    global _DIVISOR
    divisor = 0 if yamux._yamux_disable_hysteresis() else yamux._yamux_batch_threshold_divisor()
    _DIVISOR = divisor
    original = YamuxStream._auto_tune_and_send_window_update
    YamuxStream._auto_tune_and_send_window_update = _batched(original, divisor)  # type: ignore[method-assign,assignment]
    yamux.Yamux._write_frame = _lean_write_frame(yamux.Yamux._write_frame, yamux.logger)  # type: ignore[method-assign,assignment]
    install_fast_paths()
    setattr(YamuxStream, _INSTALLED, True)


def install_fast_paths() -> None:
    """Fast locks, lock-free writes within the window, buffered DATA bodies (idempotent)."""
    import struct

    from libp2p.network.stream.net_stream import NetStream
    from libp2p.stream_muxer.yamux import yamux
    from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

    from ._libp2p_locks import FastLock
    from ._libp2p_tcp import install_fast_locks

    if getattr(Yamux, _FAST, False):
        return
    install_fast_locks()
    muxer_init, stream_init = Yamux.__init__, YamuxStream.__init__

    def init_muxer(self: Any, *args: Any, **kwargs: Any) -> None:
        muxer_init(self, *args, **kwargs)
        self.streams_lock = FastLock()
        self._write_lock = FastLock()

    def init_stream(self: Any, *args: Any, **kwargs: Any) -> None:
        stream_init(self, *args, **kwargs)
        self.window_lock = FastLock()
        self.close_lock = FastLock()

    Yamux.__init__ = init_muxer  # type: ignore[method-assign]
    YamuxStream.__init__ = init_stream  # type: ignore[method-assign]
    net_stream_init = NetStream.__init__

    def init_net_stream(self: Any, *args: Any, **kwargs: Any) -> None:
        net_stream_init(self, *args, **kwargs)
        self._state_lock = FastLock()  # taken by every read and write of the stream

    NetStream.__init__ = init_net_stream  # type: ignore[method-assign]
    header = struct.Struct(yamux.YAMUX_HEADER_FORMAT)
    largest = yamux.MAX_MESSAGE_SIZE - yamux.HEADER_SIZE
    from libp2p.stream_muxer.exceptions import MuxedStreamError

    slow = _credited_write(header, yamux.TYPE_DATA, largest, MuxedStreamError)
    YamuxStream.write = _window_write(slow, header, yamux.TYPE_DATA, largest)  # type: ignore[method-assign,assignment]
    Yamux._read_data_body = _buffered_body(Yamux._read_data_body)  # type: ignore[method-assign,assignment]
    setattr(Yamux, _FAST, True)


def _window_write(
    original: Callable[..., Awaitable[None]], header: Any, data_type: int, largest: int
) -> Callable[..., Awaitable[None]]:
    """``YamuxStream.write`` whose common case — one frame within the send window, no other
    writer or window update in progress — takes no lock; the frame is py-libp2p's."""

    async def write(self: Any, data: bytes) -> None:
        size = len(data)
        if (
            0 < size <= largest
            and size <= self.send_window
            and not (self.send_closed or self.closed)
            and not self.window_lock.locked()
            and self.rw_lock._writer_lock.value
        ):
            self.send_window -= size
            await self.conn._write_frame(header.pack(0, data_type, 0, self.stream_id, size) + data)
            return
        await original(self, data)

    return write


WINDOW_POLL = 0.01
"""How often a writer waiting on a zero send window checks it anyway, as py-libp2p's write
polls: for credit that reaches the stream some other way than through the lean session's
reader, which wakes the writer at once (:func:`window_grew`)."""

WINDOW_WAIT = 5.0
"""How long a writer waits on a zero send window before the write fails (py-libp2p's)."""

_WINDOW_EVENT = "_axl_window_credited"


def window_grew(stream: Any) -> None:
    """``stream``'s send window was credited (a ``WINDOW_UPDATE`` arrived): wake the writers
    waiting on it."""
    event = getattr(stream, _WINDOW_EVENT, None)
    if event is not None:
        setattr(stream, _WINDOW_EVENT, None)
        event.set()


async def _wait_for_credit(stream: Any, error: type[Exception]) -> None:
    """Until ``stream`` has send window again or is closed, woken by :func:`window_grew`
    (or, failing that, every :data:`WINDOW_POLL` s); ``error`` after :data:`WINDOW_WAIT` s."""
    with trio.move_on_after(WINDOW_WAIT) as scope:
        while not (stream.send_window > 0 or stream.closed):
            event = getattr(stream, _WINDOW_EVENT, None)
            if event is None:
                event = trio.Event()
                setattr(stream, _WINDOW_EVENT, event)
            with trio.move_on_after(WINDOW_POLL):
                await event.wait()
    if scope.cancelled_caught:
        raise error(f"Timed out waiting for window update after {WINDOW_WAIT:g} seconds.")


def _credited_write(
    header: Any, data_type: int, largest: int, error: type[Exception]
) -> Callable[..., Awaitable[None]]:
    """py-libp2p's ``YamuxStream.write`` (the same frames, locks, checks and errors) whose
    wait on a zero send window ends when the window is credited, not at the next 10 ms poll:
    a writer a whole window ahead of its reader lost up to 10 ms per window."""

    async def write(self: Any, data: bytes) -> None:
        if self.send_closed:
            raise error("Stream is closed for sending")
        total, sent = len(data), 0
        while sent < total:
            frame: bytes | None = None
            while frame is None:
                async with self.rw_lock.write_lock():
                    if self.send_closed:
                        raise error("Stream is closed for sending")
                    async with self.window_lock:
                        if self.closed:
                            raise error("Stream is closed")
                        if self.send_window > 0:
                            size = min(self.send_window, largest, total - sent)
                            self.send_window -= size
                            chunk = data[sent : sent + size]
                            frame = header.pack(0, data_type, 0, self.stream_id, size) + chunk
                if frame is None:
                    await _wait_for_credit(self, error)
            await self.conn._write_frame(frame)
            sent += len(frame) - header.size

    return write


def _buffered_body(original: Callable[..., Awaitable[bytes]]) -> Callable[..., Awaitable[bytes]]:
    """``Yamux._read_data_body`` that takes a body the session already holds without the read
    timeout's cancel scope (the read cannot block)."""

    async def read_data_body(self: Any, length: int) -> bytes:
        take = getattr(self.secured_conn, "take_buffered", None)
        if take is not None:
            data: bytes | None = take(length)
            if data is not None:
                return data
        body: bytes = await original(self, length)
        return body

    return read_data_body


def _lean_write_frame(
    original: Callable[..., Awaitable[None]], logger: logging.Logger
) -> Callable[..., Awaitable[None]]:
    """py-libp2p's ``Yamux._write_frame`` without the debug line it builds for every frame
    whether or not debug logging is on (a header unpack, a dict and an f-string: tens of µs a
    frame on a loaded machine), nor its extra checkpoint after the send (the send is one).
    With debug logging on, the original runs."""

    async def write_frame(self: Any, data: bytes) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            await original(self, data)
            return
        async with self._write_lock:
            await self.secured_conn.write(data)  # a socket send: always a checkpoint

    return write_frame


def owed_credit(stream: Any) -> int:
    """Bytes the reader has consumed and not yet credited back to the sender."""
    buffered = len(stream.conn.stream_buffers.get(stream.stream_id, b""))
    owed: int = stream.target_recv_window - (stream.recv_window + buffered)
    return owed


_DIVISOR = 2
"""The update threshold's divisor as installed (py-libp2p's environment setting)."""


def window_update_due(stream: Any) -> bool:
    """Whether the credit owed on ``stream`` has reached the threshold at which
    :func:`install_batched_window_updates`' update method sends a window update."""
    threshold = stream.target_recv_window // _DIVISOR if _DIVISOR else 0
    return owed_credit(stream) >= max(threshold, 1)


def _batched(
    original: Callable[..., Awaitable[None]], divisor: int
) -> Callable[..., Awaitable[None]]:
    """``divisor``: the update threshold is ``target_recv_window // divisor`` (0: none)."""

    async def auto_tune_and_send_window_update(self: Any, *, bytes_read: int = 0) -> None:
        threshold = self.target_recv_window // divisor if divisor else 0
        if owed_credit(self) < threshold:
            return
        await original(self, bytes_read=0)

    return auto_tune_and_send_window_update

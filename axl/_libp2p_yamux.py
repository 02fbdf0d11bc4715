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
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

_INSTALLED = "_axl_batched_window_updates"


def install_batched_window_updates() -> None:
    """Patch py-libp2p's ``YamuxStream`` once per process (idempotent)."""
    from libp2p.stream_muxer.yamux import yamux
    from libp2p.stream_muxer.yamux.yamux import YamuxStream

    if getattr(YamuxStream, _INSTALLED, False):
        return
    # py-libp2p reads both from the environment on every call (a visible share of a busy
    # host's samples); they are read once here.
    divisor = 0 if yamux._yamux_disable_hysteresis() else yamux._yamux_batch_threshold_divisor()
    original = YamuxStream._auto_tune_and_send_window_update
    YamuxStream._auto_tune_and_send_window_update = _batched(original, divisor)  # type: ignore[method-assign,assignment]
    yamux.Yamux._write_frame = _lean_write_frame(yamux.Yamux._write_frame, yamux.logger)  # type: ignore[method-assign,assignment]
    setattr(YamuxStream, _INSTALLED, True)


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

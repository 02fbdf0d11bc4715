"""Reading and writing chunk-protocol frames on a bulk stream (the trio edge of the protocol)."""

from __future__ import annotations

import contextlib

import trio

from ._blob_protocol import Frame, FrameReader, encode
from ._errors import PeerUnreachable
from ._transport import BulkStream

MIN_READ = 1 << 16


async def read_frame(stream: BulkStream, reader: FrameReader) -> Frame | None:
    """The next frame, or None at a clean end of stream.

    Raises ``BlobProtocolError`` on bad bytes and :class:`PeerUnreachable` when the stream
    broke (also when it ends inside a frame).
    """
    while True:
        frame = reader.next()
        if frame is not None:
            return frame
        # once a frame's length is known, ask for exactly the rest of it (bounded by the
        # reader's frame limit): the frame then usually ends the buffer and a chunk is handed
        # over without a copy
        wanted = reader.wanted() if reader.header_known else MIN_READ
        try:
            data = await stream.receive_some(wanted)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise PeerUnreachable(f"bulk stream broke: {exc}") from None
        if not data:
            if reader.buffered:
                raise PeerUnreachable("bulk stream ended inside a frame")
            return None
        reader.feed(data)


async def write_frame(stream: BulkStream, frame: Frame) -> None:
    """Send one frame; raises :class:`PeerUnreachable` when the stream broke."""
    await send_bytes(stream, encode(frame))


async def send_bytes(stream: BulkStream, data: bytes | memoryview) -> None:
    """Send encoded frames; raises :class:`PeerUnreachable` when the stream broke."""
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise PeerUnreachable(f"bulk stream broke: {exc}") from None


async def close_quietly(stream: BulkStream) -> None:
    """Close a stream, ignoring a connection that is already gone (shielded, bounded)."""
    with trio.CancelScope(shield=True), trio.move_on_after(2.0):
        with contextlib.suppress(Exception):  # any error while closing means: closed
            await stream.aclose()

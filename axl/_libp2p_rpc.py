"""GossipSub RPC framing for the transport's pubsub, no IO: reading varint-prefixed RPCs out of
whatever bytes a stream read returned, and coalescing the RPCs queued for one peer into as few
RPCs as the size cap allows.

py-libp2p reads every RPC in three stream reads (one per varint byte, then the body), each a
trip through the stream's locks; :class:`RpcDecoder` takes one read of up to 64 KiB and returns
every RPC it completes. :func:`coalesce` lets one write carry every RPC a peer's queue held:
the RPC's ``publish`` and control fields are repeated, so N queued messages become one RPC,
one yamux frame, one Noise message, one socket send, and on the receiving side one parse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._errors import DecodeError, FrameTooLarge

if TYPE_CHECKING:
    from libp2p.pubsub.pb import rpc_pb2

_MAX_VARINT = 10


class RpcDecoder:
    """Reassembles varint-length-prefixed RPCs from arbitrary chunks of a byte stream.

    ``feed`` raises :class:`FrameTooLarge` for a declared length over ``max_size`` (before
    any of its body is buffered) and :class:`DecodeError` for a malformed prefix; the stream
    is to be reset after either. Buffered bytes never exceed one RPC plus one chunk.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete RPC."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every RPC body they complete, in order."""
        if self._buffer:
            self._buffer += data
            view: bytes | bytearray = self._buffer
        else:
            view = data
        rpcs: list[bytes] = []
        offset, end = 0, len(view)
        while offset < end:
            header = _read_varint(view, offset, end)
            if header is None:
                break
            length, start = header
            if length > self.max_size:
                raise FrameTooLarge(f"an RPC of {length} bytes (cap {self.max_size})")
            if end - start < length:
                break
            rpcs.append(bytes(view[start : start + length]))
            offset = start + length
        if view is self._buffer:
            del self._buffer[:offset]
        elif offset < end:
            self._buffer += memoryview(data)[offset:]
        return rpcs


def _read_varint(data: bytes | bytearray, offset: int, end: int) -> tuple[int, int] | None:
    """``(value, offset after it)``, or None while the prefix is incomplete."""
    value = 0
    for index in range(_MAX_VARINT):
        if offset + index >= end:
            return None
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, offset + index + 1
    raise DecodeError("an RPC length prefix longer than 10 bytes")


def coalesce(rpcs: Sequence[rpc_pb2.RPC], max_size: int) -> list[rpc_pb2.RPC]:
    """The RPCs merged, in order, into as few RPCs of at most ``max_size`` bytes as a greedy
    pass gives (an RPC over the cap alone stays as it is: the caller drops it).

    Merging concatenates the repeated fields (``publish``, ``subscriptions`` and every control
    list); a receiver handles them exactly as it handles the same items sent one RPC at a
    time. A merged RPC's size is at most the sum of its parts.
    """
    if len(rpcs) < 2:
        return list(rpcs)
    groups: list[list[rpc_pb2.RPC]] = []
    size = max_size + 1
    for rpc in rpcs:
        n = rpc.ByteSize()
        if size + n > max_size:
            groups.append([])
            size = 0
        groups[-1].append(rpc)
        size += n
    out: list[rpc_pb2.RPC] = []
    for group in groups:
        if len(group) == 1:
            out.append(group[0])
            continue
        merged = type(group[0])()  # an RPC (no import statement: one per write costs a call)
        for rpc in group:
            merged.MergeFrom(rpc)
        out.append(merged)
    return out

"""Framing and rate limiting for the libp2p transport's ``/axl/1.0.0`` streams; no IO.

A stream carries a sequence of frames, each a 4-byte big-endian length followed by that many
bytes. Writers batch: :func:`encode_batch` packs many queued frames into one buffer so a single
stream write (one yamux frame, one Noise message per 64 KiB) carries them all. Readers feed
whatever bytes arrived into a :class:`FrameDecoder` and get whole frames back.

A zero-length frame or a length over the cap is a protocol violation (the decoder raises), and
the transport cuts the offending peer off.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ._errors import DecodeError, FrameTooLarge

LENGTH_PREFIX = 4
_MAX_LENGTH = (1 << 32) - 1
_PREFIX = struct.Struct(">I")


def encode_batch(frames: Iterable[bytes]) -> bytes:
    """Length-prefix every frame and join them into one buffer."""
    parts: list[bytes] = []
    for frame in frames:
        size = len(frame)
        if size == 0 or size > _MAX_LENGTH:
            raise ValueError(f"a frame has 1 to {_MAX_LENGTH} bytes, got {size}")
        parts.append(size.to_bytes(LENGTH_PREFIX, "big"))
        parts.append(frame)
    return b"".join(parts)


class FrameDecoder:
    """Reassembles length-prefixed frames from arbitrary chunks of a byte stream.

    ``feed`` raises :class:`FrameTooLarge` for a declared length over ``max_frame_size`` and
    :class:`DecodeError` for a zero length; after that the decoder is unusable (the stream is
    to be reset). Buffered bytes never exceed one frame plus one chunk.
    """

    def __init__(self, max_frame_size: int) -> None:
        if max_frame_size < 1:
            raise ValueError("max_frame_size must be >= 1")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._need = 0  # length of the frame being assembled, 0 while reading a prefix
        self.failed = False

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Each frame is copied once: straight out of ``data`` while nothing is buffered (the
        common case: a read holds whole frames), else out of the buffer through a view.
        """
        if self.failed:
            raise DecodeError("the stream already violated the framing")
        if self._buffer or self._need:
            self._buffer += data
            return self._drain()
        frames: list[bytes] = []
        offset = 0
        end = len(data)
        while end - offset >= LENGTH_PREFIX:
            (need,) = _PREFIX.unpack_from(data, offset)
            self._check_length(need)
            start = offset + LENGTH_PREFIX
            if end - start < need:
                break
            frames.append(data[start : start + need])
            offset = start + need
        if offset < end:  # an incomplete frame or prefix: keep it for the next read
            self._buffer += memoryview(data)[offset:]
        return frames

    def _check_length(self, need: int) -> None:
        if need == 0:
            self.failed = True
            raise DecodeError("zero-length frame on an /axl stream")
        if need > self.max_frame_size:
            self.failed = True
            raise FrameTooLarge(
                f"peer announced a {need}-byte frame; the cap is {self.max_frame_size}"
            )

    def _drain(self) -> list[bytes]:
        buffer = self._buffer
        frames: list[bytes] = []
        offset = 0
        end = len(buffer)
        need = self._need
        with memoryview(buffer) as view:
            while True:
                if need == 0:
                    if end - offset < LENGTH_PREFIX:
                        break
                    (need,) = _PREFIX.unpack_from(view, offset)
                    offset += LENGTH_PREFIX
                    self._check_length(need)
                if end - offset < need:
                    break
                frames.append(bytes(view[offset : offset + need]))
                offset += need
                need = 0
        self._need = need
        if offset:
            del buffer[:offset]
        return frames


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``burst``. Time is passed in
    by the caller (seconds, any monotonic origin)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def take(self, count: float, now: float) -> float:
        """Take ``count`` tokens (the balance may go negative); return how many seconds to wait
        before the balance is back to zero (0.0 if it is not negative)."""
        self._refill(now)
        self._tokens -= count
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate


class Backoff:
    """Exponential reconnect backoff per peer: ``base * 2**failures`` capped at ``ceiling``."""

    def __init__(self, base: float, ceiling: float) -> None:
        if base <= 0 or ceiling < base:
            raise ValueError("need 0 < base <= ceiling")
        self.base = base
        self.ceiling = ceiling
        self._failures: dict[object, tuple[int, float]] = {}
        self.max_entries = 10_000

    def failed(self, key: object, now: float) -> float:
        """Record a failure; return the time before which no new attempt should be made."""
        count = self._failures.get(key, (0, 0.0))[0]
        retry_at: float = now + min(self.ceiling, self.base * (2.0**count))
        if len(self._failures) >= self.max_entries:  # bounded: forget the oldest failure
            self._failures.pop(next(iter(self._failures)))
        self._failures[key] = (count + 1, retry_at)
        return retry_at

    def succeeded(self, key: object) -> None:
        self._failures.pop(key, None)

    def retry_at(self, key: object) -> float:
        """When the next attempt is allowed (0.0 if there is no recorded failure)."""
        entry = self._failures.get(key)
        return entry[1] if entry else 0.0

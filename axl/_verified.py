"""Frames whose signature one in-process network already verified, shared by its receivers.

A published frame on a :class:`~axl.MemoryNetwork` reaches every subscriber as the same bytes,
and whether those bytes carry their sender's valid signature is a pure function of the bytes
(the sender's key is inside the signed envelope). So the network keeps one bounded record of
the exact frames that verified, and a receiver that holds byte-for-byte the same frame skips
the Ed25519 check; every other check (addressing, freshness, replay window, payload) stays per
receiver. Only the memory transport offers it: across a process boundary a receiver checks
every frame itself.
"""

from __future__ import annotations

DEFAULT_MAX_FRAMES = 4096
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class VerifiedFrames:
    """A bounded set of frames (whole, exact bytes) whose envelope signature verified.

    Keyed by the frame bytes themselves, compared in full on lookup: a frame that differs in
    one bit from a remembered one is a miss, so a hit can only vouch for bytes that verified.
    Holds at most ``max_frames`` frames and ``max_bytes`` bytes of them, evicting the oldest
    first; a frame larger than ``max_bytes`` is never held. Add only frames whose signature
    was actually verified (never a trusted-local frame that skipped the check).
    """

    def __init__(
        self, max_frames: int = DEFAULT_MAX_FRAMES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_frames < 1 or max_bytes < 1:
            raise ValueError("max_frames and max_bytes must be >= 1")
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._frames: dict[bytes, None] = {}  # insertion order = eviction order
        self._bytes = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def held_bytes(self) -> int:
        """The total size of the frames held."""
        return self._bytes

    def check(self, frame: bytes) -> bool:
        """Whether exactly these bytes verified before (counted in :attr:`hits`)."""
        if type(frame) is bytes and frame in self._frames:  # a subclass could fake equality
            self.hits += 1
            return True
        return False

    def add(self, frame: bytes) -> None:
        """Remember ``frame`` as verified (it must have passed the signature check)."""
        size = len(frame)
        if type(frame) is not bytes or size > self.max_bytes or frame in self._frames:
            return
        frames = self._frames
        frames[frame] = None
        self._bytes += size
        while len(frames) > self.max_frames or self._bytes > self.max_bytes:
            oldest = next(iter(frames))
            del frames[oldest]
            self._bytes -= len(oldest)

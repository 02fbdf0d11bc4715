"""Inbound frame checks, in order and cheapest first; no IO.

size cap → structure decode → addressing → known type → signature → freshness → replay window
→ payload validation. Each failure raises a :class:`RejectedFrame` subclass whose ``reason``
labels the bus's rejection counter.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ._errors import FrameTooLarge, MisaddressedFrame, ReplayError, SignatureError, StaleMessage
from ._identity import PeerId, verify_signature
from ._messages import Message, MessageRegistry
from ._wire import SIGNING_DOMAIN, Envelope, decode_frame


class ReplayWindow:
    """Remembers accepted (sender, message id) pairs for ``window_ms``, in bounded memory.

    When more than ``capacity`` ids are held, the oldest is evicted and the *floor* rises to its
    timestamp: any envelope at or below the floor is then refused as a possible replay. So the
    window stays sound (no replay is ever accepted) while memory stays bounded.
    """

    def __init__(self, window_ms: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("replay window capacity must be >= 1")
        self.window_ms = window_ms
        self.capacity = capacity
        self._seen: OrderedDict[bytes, int] = OrderedDict()
        self._floor_ms = -1

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_add(
        self, sender: PeerId, message_id: bytes, timestamp_ms: int, now_ms: int
    ) -> None:
        """Record the id or raise :class:`ReplayError`."""
        self._expire(now_ms)
        key = sender.raw + message_id  # one bytes object: a third less memory than a tuple
        if key in self._seen:
            raise ReplayError(f"message {message_id.hex()} from {sender.short()} was already seen")
        if timestamp_ms <= self._floor_ms:
            raise ReplayError(
                f"message {message_id.hex()} is older than the replay window's floor "
                "(the node is under heavy load; the sender should retry)"
            )
        self._seen[key] = timestamp_ms
        while len(self._seen) > self.capacity:
            _, evicted_ts = self._seen.popitem(last=False)
            self._floor_ms = max(self._floor_ms, evicted_ts)

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        seen = self._seen
        while seen:
            key = next(iter(seen))
            if seen[key] >= horizon:
                break
            del seen[key]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A frame that passed every check."""

    envelope: Envelope
    message: Message


class FrameGuard:
    """Checks inbound frames for one local peer. Pure: the caller supplies ``now_ms``."""

    def __init__(
        self,
        local_peer: PeerId,
        registry: MessageRegistry,
        *,
        max_frame_size: int,
        freshness_window_ms: int,
        max_future_skew_ms: int,
        replay_capacity: int,
    ) -> None:
        self.local_peer = local_peer
        self.registry = registry
        self.max_frame_size = max_frame_size
        self.freshness_window_ms = freshness_window_ms
        self.max_future_skew_ms = max_future_skew_ms
        self.replay = ReplayWindow(freshness_window_ms, replay_capacity)

    def check(self, frame: bytes, now_ms: int) -> Accepted:
        """Run every check on ``frame``; raises a :class:`RejectedFrame` subclass."""
        if len(frame) > self.max_frame_size:
            raise FrameTooLarge(f"frame of {len(frame)} bytes exceeds cap {self.max_frame_size}")
        envelope = decode_frame(frame)
        if envelope.recipient is not None and envelope.recipient != self.local_peer:
            raise MisaddressedFrame(f"frame addressed to {envelope.recipient.short()}")
        cls = self.registry.lookup(envelope.type, envelope.version)
        if not verify_signature(
            envelope.sender, envelope.signature, SIGNING_DOMAIN + envelope.body
        ):
            raise SignatureError(f"bad signature on {envelope.type} from {envelope.sender.short()}")
        age = now_ms - envelope.timestamp_ms
        if age > self.freshness_window_ms or -age > self.max_future_skew_ms:
            raise StaleMessage(
                f"{envelope.type} from {envelope.sender.short()} is {age} ms old; window is "
                f"{self.freshness_window_ms} ms back, {self.max_future_skew_ms} ms ahead"
            )
        self.replay.check_and_add(
            envelope.sender, envelope.message_id, envelope.timestamp_ms, now_ms
        )
        return Accepted(envelope, cls.decode_payload(envelope.payload))

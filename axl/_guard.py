"""Inbound frame checks, in order and cheapest first; no IO.

size cap → structure decode → addressing → known type → signature → freshness → replay window
→ payload validation. Each failure raises a :class:`RejectedFrame` subclass whose ``reason``
labels the bus's rejection counter.

The checks run in one call (:meth:`FrameGuard.check`) or in three phases, so that a receiver
can verify the signatures of a whole batch at once on a worker thread between the cheap checks
and the stateful ones: :meth:`FrameGuard.precheck` (size → decode → addressing → type), then
:func:`verify_signatures` (pure; libsodium releases the GIL), then :meth:`FrameGuard.finish`
(signature verdict → freshness → replay → payload), in arrival order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import (
    FrameTooLarge,
    MisaddressedFrame,
    RejectedFrame,
    ReplayError,
    SignatureError,
    StaleMessage,
    UnknownMessageType,
)
from ._identity import PeerId, verify_signature
from ._messages import Message, MessageRegistry
from ._wire import MESSAGE_ID_LENGTH, SIGNING_DOMAIN, Envelope, Kind, decode_frame


class ReplayWindow:
    """Remembers accepted (sender, message id) pairs, in bounded memory, per sender.

    Ids are kept until they leave the window (``timestamp < now - window_ms``; older frames
    are refused anyway). When more than ``capacity`` ids are held, the one accepted first is
    evicted and **its sender's** *floor* rises to its timestamp: that sender's envelopes at or
    below its floor are refused from then on. So the window is sound (no replay is accepted)
    and bounded, and one sender's frames, forward-dated or not, only ever move its own floor:
    a sender whose timestamps increase never has a fresh frame refused.

    Floors are themselves bounded (``max_floors`` senders, default ``capacity``); the floor of
    the sender least recently evicted from is then folded into a shared floor for senders
    without one. Only more than ``max_floors`` distinct signing senders within the window can
    reach that shared floor.
    """

    def __init__(self, window_ms: int, capacity: int, max_floors: int | None = None) -> None:
        if capacity < 1 or (max_floors is not None and max_floors < 1):
            raise ValueError("replay window capacity and max_floors must be >= 1")
        self.window_ms = window_ms
        self.capacity = capacity
        self.max_floors = max_floors or capacity
        self._seen: OrderedDict[bytes, int] = OrderedDict()  # sender + id -> ts, accept order
        self._floors: OrderedDict[bytes, int] = OrderedDict()  # sender -> floor, raise order
        self._shared_floor = -1  # for senders without a floor of their own

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def floors(self) -> int:
        """How many senders have a floor of their own."""
        return len(self._floors)

    def floor_of(self, sender: PeerId) -> int:
        """The timestamp at or below which ``sender``'s envelopes are refused."""
        return self._floors.get(sender.raw, self._shared_floor)

    def check_and_add(
        self, sender: PeerId, message_id: bytes, timestamp_ms: int, now_ms: int
    ) -> None:
        """Record the id or raise :class:`ReplayError` (also for a timestamp already out of
        the window, which could be a replay of a forgotten id)."""
        if len(message_id) != MESSAGE_ID_LENGTH:
            raise ReplayError(f"message ids have {MESSAGE_ID_LENGTH} bytes")
        self._expire(now_ms)
        if timestamp_ms < now_ms - self.window_ms:
            raise ReplayError(f"message {message_id.hex()} is older than the replay window")
        key = sender.raw + message_id  # one bytes object: a third less memory than a tuple
        if key in self._seen:
            raise ReplayError(f"message {message_id.hex()} from {sender.short()} was already seen")
        if timestamp_ms <= self._floors.get(sender.raw, self._shared_floor):
            raise ReplayError(
                f"message {message_id.hex()} is at or below {sender.short()}'s replay floor "
                "(the node forgot older ids of this sender under load; retry)"
            )
        self._seen[key] = timestamp_ms
        while len(self._seen) > self.capacity:
            evicted, evicted_ts = self._seen.popitem(last=False)
            self._raise_floor(evicted[:-MESSAGE_ID_LENGTH], evicted_ts)

    def _raise_floor(self, sender_raw: bytes, timestamp_ms: int) -> None:
        floors = self._floors
        floor = max(timestamp_ms, floors.pop(sender_raw, self._shared_floor))
        floors[sender_raw] = floor
        while len(floors) > self.max_floors:
            _, dropped = floors.popitem(last=False)
            self._shared_floor = max(self._shared_floor, dropped)

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        seen = self._seen
        while seen:
            key = next(iter(seen))
            if seen[key] >= horizon:
                break
            del seen[key]
        floors = self._floors
        while floors:  # a floor below the horizon refuses nothing the window would accept
            sender = next(iter(floors))
            if floors[sender] >= horizon:
                break
            del floors[sender]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A frame that passed every check."""

    envelope: Envelope
    message: Message


@dataclass(frozen=True, slots=True)
class Prechecked:
    """A frame that passed the checks before the signature: its envelope, its message class,
    and whether its signature is still to be verified (``False`` only for a trusted-local
    frame whose sender is the endpoint that handed it over)."""

    envelope: Envelope
    cls: type[Message]
    verify: bool


def verify_envelope(envelope: Envelope) -> bool:
    """True when the envelope carries its sender's valid signature of its body."""
    return verify_signature(envelope.sender, envelope.signature, SIGNING_DOMAIN + envelope.body)


def verify_signatures(batch: Sequence[Prechecked]) -> list[bool]:
    """The signature verdict of each prechecked frame (``True`` where none is needed). Pure and
    thread-safe: run it on a worker thread to verify a batch off the event loop."""
    return [not item.verify or verify_envelope(item.envelope) for item in batch]


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

    def check(self, frame: bytes, now_ms: int, *, trusted_via: PeerId | None = None) -> Accepted:
        """Run every check on ``frame``; raises a :class:`RejectedFrame` subclass.

        ``trusted_via``: the trusted-local endpoint that handed the frame over, if any (see
        :class:`~axl.InboundFrame`); its own frames skip the signature check.
        """
        checked = self.precheck(frame, trusted_via=trusted_via)
        return self.finish(checked, not checked.verify or verify_envelope(checked.envelope), now_ms)

    def precheck(self, frame: bytes, *, trusted_via: PeerId | None = None) -> Prechecked:
        """Size, structure, addressing and type; raises a :class:`RejectedFrame` subclass."""
        if len(frame) > self.max_frame_size:
            raise FrameTooLarge(f"frame of {len(frame)} bytes exceeds cap {self.max_frame_size}")
        envelope = decode_frame(frame)
        if envelope.recipient is not None and envelope.recipient != self.local_peer:
            raise MisaddressedFrame(f"frame addressed to {envelope.recipient.short()}")
        try:
            cls = self.registry.lookup(envelope.type, envelope.version)
        except UnknownMessageType as exc:
            # Cheap refusal first; a request addressed to us is then authenticated so that its
            # sender can be told (a typed error reply rather than a timeout).
            if (
                envelope.kind is Kind.REQUEST
                and envelope.recipient == self.local_peer
                and (envelope.sender == trusted_via or verify_envelope(envelope))
            ):
                exc.envelope = envelope
            raise
        return Prechecked(envelope, cls, trusted_via is None or envelope.sender != trusted_via)

    def finish(self, checked: Prechecked, signature_ok: bool, now_ms: int) -> Accepted:
        """Signature verdict, freshness, replay window and payload, in that order; raises a
        :class:`RejectedFrame` subclass. Call in arrival order (the replay window is state)."""
        envelope = checked.envelope
        if not signature_ok:
            raise SignatureError(f"bad signature on {envelope.type} from {envelope.sender.short()}")
        try:
            age = now_ms - envelope.timestamp_ms
            if age > self.freshness_window_ms or -age > self.max_future_skew_ms:
                raise StaleMessage(
                    f"{envelope.type} from {envelope.sender.short()} is {age} ms old; window is "
                    f"{self.freshness_window_ms} ms back, {self.max_future_skew_ms} ms ahead"
                )
            self.replay.check_and_add(
                envelope.sender, envelope.message_id, envelope.timestamp_ms, now_ms
            )
            return Accepted(envelope, checked.cls.decode_payload(envelope.payload))
        except RejectedFrame as exc:
            exc.envelope = envelope  # the signature holds: the sender is authenticated
            raise

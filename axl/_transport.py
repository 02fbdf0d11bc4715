"""The small interface every transport implements.

A transport moves opaque frames (already signed envelopes) between peers; it never looks inside
them. Direct sends apply backpressure (they wait while the peer's queue is full). Topic
publication is at-most-once: a subscriber whose queue is full misses the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._identity import PeerId


@dataclass(frozen=True, slots=True)
class InboundFrame:
    """A frame as received. ``via`` is the transport-level peer that handed it over (for
    gossip, the forwarding neighbour), ``topic`` is set for topic deliveries.

    ``trusted`` is set only by an in-process :class:`~axl.MemoryNetwork` when both ends were
    attached with ``trusted_local=True``: the network itself vouches that ``via`` (an endpoint
    in this process that its owner declared trusted) handed the frame over, so the bus may skip
    the envelope signature check for a frame whose sender is ``via`` (``docs/wire.md``,
    "Trusted-local mode"). Transports that cross a process boundary never set it."""

    frame: bytes
    via: PeerId | None
    topic: str | None
    trusted: bool = False


@runtime_checkable
class Transport(Protocol):
    """Moves frames between peers. Implementations: ``MemoryTransport``, ``Libp2pTransport``."""

    @property
    def local_peer(self) -> PeerId:
        """The peer id this transport speaks for."""
        ...

    async def send(self, peer: PeerId, frame: bytes) -> None:
        """Deliver ``frame`` to ``peer``; waits while its queue is full.

        Raises ``PeerUnreachable`` when there is no route and ``TransportClosed`` after close.
        """
        ...

    async def publish(self, topic: str, frame: bytes) -> None:
        """Send ``frame`` to the topic's subscribers (not to ourselves), at most once each."""
        ...

    async def subscribe(self, topic: str) -> None:
        """Start receiving the topic's frames."""
        ...

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving the topic's frames."""
        ...

    async def receive(self) -> InboundFrame:
        """The next inbound frame; raises ``TransportClosed`` once closed."""
        ...

    async def receive_batch(self, max_frames: int) -> list[InboundFrame]:
        """Wait for the next inbound frame and return it together with the frames already
        queued behind it, in order, ``max_frames`` at most (so that a receiver can check a
        batch at once, e.g. verify its signatures on a worker thread). Raises
        ``TransportClosed`` once closed."""
        ...

    async def aclose(self) -> None:
        """Close; pending and later ``receive`` calls raise ``TransportClosed``."""
        ...


class BulkStream(Protocol):
    """An ordered, reliable, flow-controlled byte stream to one peer, for bulk data.

    ``send_all`` waits while the peer's window is full; ``receive_some`` returns ``b""`` at the
    end of the stream. Both raise :class:`PeerUnreachable` when the connection broke.
    ``send_all`` is done with ``data`` when it returns (the caller may then reuse its buffer).
    """

    async def send_all(self, data: bytes | memoryview) -> None: ...

    async def receive_some(self, max_bytes: int) -> bytes: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BulkTransport(Protocol):
    """A transport that can also carry bulk streams (blobs), apart from its small frames so
    that bulk transfer does not delay messages. Both built-in transports implement it."""

    async def open_bulk(self, peer: PeerId) -> BulkStream:
        """Open a bulk stream to ``peer``; raises :class:`PeerUnreachable`."""
        ...

    async def accept_bulk(self) -> tuple[PeerId, BulkStream]:
        """The next inbound bulk stream and the (authenticated) peer that opened it; raises
        ``TransportClosed`` once closed. Streams not accepted soon are refused."""
        ...

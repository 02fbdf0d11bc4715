"""Counting what crosses the simulated network, by message type, without touching ``axl``:
every agent's memory transport is wrapped in a :class:`CountingTransport`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any

import msgpack

from axl import Identity, InboundFrame, MemoryNetwork, PeerId, Transport, VerifiedFrames

from .._wiring import TransportFactory

_TYPE_FIELD = 2  # position of the message type in the envelope body (docs/wire.md)


def frame_type(frame: bytes) -> str:
    """The message type an envelope claims (``"invalid"`` if it does not parse)."""
    try:
        body, _signature = msgpack.unpackb(frame)
        fields = msgpack.unpackb(body)
        kind = fields[_TYPE_FIELD]
    except Exception:  # any garbage: that is what is being counted
        return "invalid"
    return kind if isinstance(kind, str) else "invalid"


class TrafficCounter:
    """Frames sent on the network, by message type, summed over every agent."""

    def __init__(self) -> None:
        self.by_type: Counter[str] = Counter()

    def snapshot(self) -> dict[str, int]:
        return dict(self.by_type)


class CountingTransport:
    """A transport (memory, or libp2p in ``--processes`` workers) that counts each outgoing
    frame's type. With ``mangle`` (spammers), it flips a bit of each frame's signature on the
    way out."""

    def __init__(self, inner: Transport, counter: TrafficCounter, *, mangle: bool) -> None:
        self._inner = inner
        self._counter = counter
        self._mangle = mangle
        self._interest: Callable[..., bool] | None = None
        self.narrow: Callable[[str, Any], bool] | None = None
        """A role's own filter of the published frames its bus wants (``SimSolver``'s): it
        must answer False only for frames the role's handlers would ignore."""

    @property
    def local_peer(self) -> PeerId:
        return self._inner.local_peer

    @property
    def verified_frames(self) -> VerifiedFrames | None:
        """The inner memory network's shared record of verified frames (see
        ``axl.MemoryNetwork``); None over libp2p, which has none."""
        shared = getattr(self._inner, "verified_frames", None)
        return shared if isinstance(shared, VerifiedFrames) else None

    def set_interest(self, interest: Callable[..., bool] | None) -> None:
        """Forwarded to the inner memory transport (see ``axl.MemoryNetwork``), narrowed by
        :attr:`narrow`; over libp2p, which cannot filter, every frame arrives."""
        self._interest = interest
        set_interest = getattr(self._inner, "set_interest", None)
        if callable(set_interest):
            set_interest(None if interest is None else self._wants)

    def _wants(self, topic: str, envelope: Any) -> bool:
        interest, narrow = self._interest, self.narrow
        if interest is not None and not interest(topic, envelope):
            return False
        return narrow is None or narrow(topic, envelope)

    def _count(self, frame: bytes) -> bytes:
        if self._mangle and frame:
            frame = frame[:-1] + bytes([frame[-1] ^ 1])
            self._counter.by_type["invalid"] += 1
        else:
            self._counter.by_type[frame_type(frame)] += 1
        return frame

    async def send(self, peer: PeerId, frame: bytes) -> None:
        await self._inner.send(peer, self._count(frame))

    async def publish(self, topic: str, frame: bytes) -> None:
        await self._inner.publish(topic, self._count(frame))

    async def subscribe(self, topic: str) -> None:
        await self._inner.subscribe(topic)

    async def unsubscribe(self, topic: str) -> None:
        await self._inner.unsubscribe(topic)

    async def receive(self) -> InboundFrame:
        return await self._inner.receive()

    async def receive_batch(self, max_frames: int) -> list[InboundFrame]:
        return await self._inner.receive_batch(max_frames)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> CountingTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def counting_factory(
    network: MemoryNetwork, counter: TrafficCounter, spammers: set[PeerId]
) -> TransportFactory:
    """A transport factory for :class:`agents.AgentRuntime`: memory transports on
    ``network``, counted, and mangling for the peers in ``spammers``."""

    def open_transport(identity: Identity) -> CountingTransport:
        inner = network.connect(identity.peer_id)
        return CountingTransport(inner, counter, mangle=identity.peer_id in spammers)

    return open_transport

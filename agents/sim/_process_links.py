"""The scenario's network over a real transport (``--processes`` workers): every inbound
frame is cut when a timed partition separates its sender from the receiver (``cut``), lost
with probability ``loss``, or handed on after ``latency`` plus up to ``jitter`` seconds,
drawn per receiver from a seeded stream, as the memory network does per link. It adds to
what the real network does (on loopback: almost nothing). Bulk streams pass as they are."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgpack
import trio

from axl import InboundFrame, LinkProfile, PeerId, Transport, TransportClosed

_SENDER_FIELD = 4  # position of the sender in the envelope body (docs/wire.md)

Cut = Callable[[InboundFrame], bool]
"""Whether a partition separates an inbound frame's sender from the receiver now."""


def sender_of(frame: InboundFrame) -> bytes | None:
    """The raw peer id of the frame's sender: the envelope's (a gossip frame's ``via`` is the
    forwarding neighbour), else ``via``'s for a frame that does not parse."""
    try:
        body, _signature = msgpack.unpackb(frame.frame)
        sender = msgpack.unpackb(body)[_SENDER_FIELD]
    except Exception:  # garbage: who handed it over is all there is
        sender = None
    if isinstance(sender, bytes):
        return sender
    return frame.via.raw if frame.via is not None else None


class Partitions:
    """The scenario's timed partitions on a clock that starts at :meth:`start`: each one cuts a
    seeded ``share`` of ``peers`` (an island) off from the rest for its ``duration``, one
    after the other in start order, as the in-process runner does."""

    def __init__(
        self, windows: Sequence[tuple[float, float, float]], peers: Sequence[PeerId], seed: int
    ) -> None:
        rng = random.Random(f"axl-processes/{seed}/partitions")
        self.t0: float | None = None
        self.windows: list[tuple[float, float, frozenset[bytes]]] = []
        for start, duration, share in sorted(windows):
            island = rng.sample(list(peers), max(1, round(share * len(peers))))
            self.windows.append((start, start + duration, frozenset(p.raw for p in island)))

    def start(self) -> None:
        """The run started now (the hub's ``Go``)."""
        self.t0 = trio.current_time()

    def island(self) -> frozenset[bytes] | None:
        """The island cut off now, if any."""
        if self.t0 is None:
            return None
        t = trio.current_time() - self.t0
        for start, end, island in self.windows:
            if start <= t < end:
                return island
        return None

    def cut_for(self, local: PeerId) -> Cut:
        """The cut seen by the receiver ``local``."""

        def cut(frame: InboundFrame) -> bool:
            island = self.island()
            if island is None:
                return False
            sender = sender_of(frame)
            return sender is not None and (sender in island) != (local.raw in island)

        return cut


@dataclass
class LinkStats:
    """Inbound frames handed on and lost, summed over a worker's agents."""

    delivered: int = 0
    lost: int = 0
    partitioned: int = 0


class ShapedTransport:
    """A transport whose inbound frames follow a :class:`LinkProfile` (see the module doc);
    open it with :func:`shaped`."""

    def __init__(
        self,
        inner: Transport,
        profile: LinkProfile,
        rng: random.Random,
        stats: LinkStats,
        nursery: trio.Nursery,
        cut: Cut | None = None,
    ) -> None:
        self._inner, self._profile, self._rng, self._stats = inner, profile, rng, stats
        self._cut = cut
        self._nursery = nursery
        self._in, self._out = trio.open_memory_channel[InboundFrame](math.inf)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (or private): no recursion through _inner
            raise AttributeError(name)
        return getattr(self._inner, name)  # the inner transport's extras (bulk streams)

    @property
    def local_peer(self) -> PeerId:
        return self._inner.local_peer

    async def _pump(self) -> None:
        profile = self._profile
        try:
            while True:
                for frame in await self._inner.receive_batch(256):
                    if self._cut is not None and self._cut(frame):
                        self._stats.partitioned += 1
                        continue
                    delay = profile.draw(self._rng)
                    if delay is None:
                        self._stats.lost += 1
                        continue
                    if delay > 0:
                        self._nursery.start_soon(self._later, frame, delay)
                    else:
                        self._hand_on(frame)
        except TransportClosed:
            pass
        finally:
            await self._in.aclose()

    async def _later(self, frame: InboundFrame, delay: float) -> None:
        await trio.sleep(delay)
        self._hand_on(frame)

    def _hand_on(self, frame: InboundFrame) -> None:
        try:
            self._in.send_nowait(frame)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return  # closed meanwhile
        self._stats.delivered += 1

    async def send(self, peer: PeerId, frame: bytes) -> None:
        await self._inner.send(peer, frame)

    async def publish(self, topic: str, frame: bytes) -> None:
        await self._inner.publish(topic, frame)

    async def subscribe(self, topic: str) -> None:
        await self._inner.subscribe(topic)

    async def unsubscribe(self, topic: str) -> None:
        await self._inner.unsubscribe(topic)

    async def receive(self) -> InboundFrame:
        try:
            return await self._out.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed("the transport is closed") from None

    async def receive_batch(self, max_frames: int) -> list[InboundFrame]:
        frames = [await self.receive()]
        while len(frames) < max_frames:
            try:
                frames.append(self._out.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        return frames

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def shaped(
    inner: Transport,
    profile: LinkProfile,
    rng: random.Random,
    stats: LinkStats,
    cut: Cut | None = None,
) -> AsyncIterator[Transport]:
    """``inner`` with ``profile`` and ``cut`` applied to its inbound frames (``inner`` itself
    for a perfect link without partitions)."""
    if not (profile.latency or profile.jitter or profile.loss or cut is not None):
        yield inner
        return
    async with trio.open_nursery() as nursery:
        transport = ShapedTransport(inner, profile, rng, stats, nursery, cut)
        nursery.start_soon(transport._pump)
        try:
            yield transport
        finally:
            nursery.cancel_scope.cancel()

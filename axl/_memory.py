"""In-process transport for simulations and tests, with seeded latency, loss and partitions.

All peers attached to one :class:`MemoryNetwork` can reach each other. Latency is applied on
the receiving side (a frame becomes receivable at its due time on trio's clock, so
``trio.testing.MockClock`` makes simulated time free). Loss and jitter come from one seeded
``random.Random``, so a simulation with the same seed and schedule is reproducible.

Trusted-local mode (opt-in per endpoint, ``connect(peer, trusted_local=True)``): between two
trusted endpoints the network marks frames ``trusted`` and the buses skip signing and
verifying direct envelopes; frames from any other endpoint are checked in full. See
``docs/wire.md`` ("Trusted-local mode").

Verified frames: a published frame reaches its subscribers as the same bytes, so the network
keeps one bounded :class:`~axl.VerifiedFrames` record of the frames whose signature a
receiver verified, and the other receivers of those exact bytes skip the Ed25519 check (the
rest of the checks stay theirs). ``MemoryNetwork(verified_frames=0)`` turns it off.

Interest: a receiving bus may tell its transport which published frames it would act on
(:meth:`MemoryTransport.set_interest`; the bus installs its own: a plain message of a type it
has no handler for, on a topic it has no subscription stream for, is one it would count as
unhandled and drop). The network then reads a published frame's envelope once and leaves it
out of the inboxes of the subscribers not interested in it (counted
``NetworkStats.uninterested``): no wake-up, decoding or checks for a frame each would drop.
A frame that does not decode goes to every subscriber (each rejects it, counted, as before).

This module holds the network object and its endpoints; the delayed inbox is
:mod:`._memory_inbox`'s, a link's profile :mod:`._link_profile`'s.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType

import trio

from ._errors import DecodeError, PeerUnreachable, TransportClosed
from ._identity import PeerId
from ._link_profile import LinkProfile
from ._memory_bulk import MemoryBulkStream, MemoryConnection
from ._memory_inbox import _DelayedInbox
from ._transport import InboundFrame
from ._verified import DEFAULT_MAX_FRAMES, VerifiedFrames
from ._wire import Envelope, decode_frame

Interest = Callable[[str, Envelope], bool]
"""Whether a receiver wants a frame published to a topic: ``(topic, envelope) -> bool``."""

BULK_BACKLOG = 64


@dataclass
class NetworkStats:
    """What the simulated network did: frames delivered, lost, cut by partitions, dropped full."""

    delivered: int = 0
    lost: int = 0
    partitioned: int = 0
    dropped_full: int = 0
    uninterested: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


class MemoryNetwork:
    """A simulated network. ``connect(peer)`` attaches a :class:`MemoryTransport` to it."""

    def __init__(
        self,
        *,
        seed: int = 0,
        default_link: LinkProfile | None = None,
        queue_capacity: int = 1024,
        verified_frames: int = DEFAULT_MAX_FRAMES,
    ) -> None:
        """``verified_frames``: how many verified frames its receivers share (0: none; see
        the module docs)."""
        if queue_capacity < 1 or verified_frames < 0:
            raise ValueError("queue_capacity must be >= 1 and verified_frames >= 0")
        self.default_link = default_link or LinkProfile()
        self.queue_capacity = queue_capacity
        self.stats = NetworkStats()
        self._random = random.Random(seed)
        self._links: dict[tuple[PeerId, PeerId], LinkProfile] = {}
        self._transports: dict[PeerId, MemoryTransport] = {}
        # topic -> subscribers in subscription order (a dict, not a set: a set's order follows
        # the peer ids' hashes, which change with the process's hash seed, and the order in
        # which a topic frame's receivers draw their jitter must not)
        self._topics: dict[str, dict[PeerId, None]] = {}
        self._group_of: dict[PeerId, int] = {}
        self._connections: set[MemoryConnection] = set()
        self._trusted: set[PeerId] = set()
        self.verified_frames = VerifiedFrames(verified_frames) if verified_frames else None

    # -- topology ------------------------------------------------------------------------------

    def connect(self, peer: PeerId, *, trusted_local: bool = False) -> MemoryTransport:
        """Attach a transport for ``peer``; use it as an async context manager to close it.

        ``trusted_local=True`` declares the endpoint's agent trusted by every other trusted
        endpoint of this network (agents of one owner in one process): direct envelopes
        between trusted endpoints are neither signed nor verified. Never set it for an
        endpoint whose code you do not trust (an adversary in a simulation).
        """
        if peer in self._transports:
            raise ValueError(f"{peer.short()} is already attached to this network")
        transport = MemoryTransport(self, peer, self.queue_capacity)
        self._transports[peer] = transport
        if trusted_local:
            self._trusted.add(peer)
        return transport

    def _trusts(self, sender: PeerId, receiver: PeerId) -> bool:
        return sender in self._trusted and receiver in self._trusted

    def set_link(
        self, a: PeerId, b: PeerId, profile: LinkProfile, *, both_ways: bool = True
    ) -> None:
        """Override the link profile from ``a`` to ``b`` (and back, by default)."""
        self._links[(a, b)] = profile
        if both_ways:
            self._links[(b, a)] = profile

    def partition(self, *groups: Iterable[PeerId]) -> None:
        """Split the network: peers in different groups cannot reach each other. Peers in no
        group form one more group of their own."""
        self._group_of = {}
        for index, group in enumerate(groups, start=1):
            for peer in group:
                self._group_of[peer] = index
        for connection in list(self._connections):
            a, b = connection.peers
            if self._group_of.get(a, 0) != self._group_of.get(b, 0):
                self._cut(connection)

    def cut_streams(self, peer: PeerId | None = None) -> int:
        """Break every open bulk stream (of ``peer``, or all); returns how many were cut."""
        cut = 0
        for connection in list(self._connections):
            if peer is None or peer in connection.peers:
                self._cut(connection)
                cut += 1
        return cut

    def _cut(self, connection: MemoryConnection) -> None:
        connection.cut()
        self._connections.discard(connection)

    def heal(self) -> None:
        """Remove every partition."""
        self._group_of = {}

    @property
    def peers(self) -> list[PeerId]:
        return list(self._transports)

    # -- delivery ------------------------------------------------------------------------------

    def _route(self, sender: PeerId, receiver: PeerId) -> float | None:
        """The delay for one frame, or None if the frame is lost or cut."""
        if self._group_of and self._group_of.get(sender, 0) != self._group_of.get(receiver, 0):
            self.stats.partitioned += 1
            return None
        link = (
            self._links.get((sender, receiver), self.default_link)
            if self._links
            else self.default_link
        )
        delay = link.draw(self._random)
        if delay is None:
            self.stats.lost += 1
        return delay

    async def _send(self, sender: PeerId, peer: PeerId, frame: bytes) -> None:
        target = self._transports.get(peer)
        if target is None:
            raise PeerUnreachable(f"{peer.short()} is not on this network")
        delay = self._route(sender, peer)
        if delay is None:
            return
        trusted = self._trusts(sender, peer)
        await target._inbox.put(InboundFrame(frame, sender, None, trusted), delay)
        self.stats.delivered += 1

    def _publish(self, sender: PeerId, topic: str, frame: bytes) -> None:
        envelope: Envelope | None = None
        peeked = False
        for peer in self._topics.get(topic, ()):
            if peer == sender:
                continue
            wants = self._transports[peer]._interest
            if wants is not None:
                if not peeked:
                    envelope, peeked = _peek(frame), True
                if envelope is not None and not wants(topic, envelope):
                    self.stats.uninterested += 1
                    continue
            delay = self._route(sender, peer)
            if delay is None:
                continue
            item = InboundFrame(frame, sender, topic, self._trusts(sender, peer))
            if self._transports[peer]._inbox.put_nowait(item, delay):
                self.stats.delivered += 1
                self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
            else:
                self.stats.dropped_full += 1

    def _open_bulk(self, sender: PeerId, peer: PeerId) -> MemoryBulkStream:
        target = self._transports.get(peer)
        if target is None or target._inbox.closed:
            raise PeerUnreachable(f"{peer.short()} is not on this network")
        if self._group_of and self._group_of.get(sender, 0) != self._group_of.get(peer, 0):
            raise PeerUnreachable(f"{peer.short()} is partitioned away")
        connection = MemoryConnection(sender, peer)
        mine, theirs = connection.ends()
        try:
            target._bulk_send.send_nowait((sender, theirs))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            raise PeerUnreachable(f"{peer.short()} is not accepting bulk streams") from None
        self._connections.add(connection)
        return mine

    def _detach(self, peer: PeerId) -> None:
        self.cut_streams(peer)
        self._transports.pop(peer, None)
        self._trusted.discard(peer)
        for members in self._topics.values():
            members.pop(peer, None)


def _peek(frame: bytes) -> Envelope | None:
    """A published frame's envelope (not verified), or None if it does not decode."""
    try:
        return decode_frame(frame)
    except DecodeError:  # it goes to every receiver, and each rejects it
        return None


class MemoryTransport:
    """One peer's attachment to a :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, peer: PeerId, capacity: int) -> None:
        self._network = network
        self._peer = peer
        self._inbox = _DelayedInbox(capacity)
        self._topics: set[str] = set()
        self._interest: Interest | None = None
        self._bulk_send, self._bulk_receive = trio.open_memory_channel[
            tuple[PeerId, MemoryBulkStream]
        ](BULK_BACKLOG)

    @property
    def local_peer(self) -> PeerId:
        return self._peer

    @property
    def queued(self) -> int:
        """Frames waiting in this transport's inbound queue."""
        return len(self._inbox)

    @property
    def verified_frames(self) -> VerifiedFrames | None:
        """The network's record of verified frames, shared by its receivers (the bus uses it;
        see the module docs), or None when the network keeps none."""
        return self._network.verified_frames

    def set_interest(self, interest: Interest | None) -> None:
        """Which published frames this transport's receiver wants (None: all; see the module
        docs). It must answer False only for frames the receiver would drop unread."""
        self._interest = interest

    def _check_open(self) -> None:
        if self._inbox.closed:
            raise TransportClosed(f"transport of {self._peer.short()} is closed")

    async def send(self, peer: PeerId, frame: bytes) -> None:
        self._check_open()
        await self._network._send(self._peer, peer, frame)

    async def publish(self, topic: str, frame: bytes) -> None:
        self._check_open()
        self._network._publish(self._peer, topic, frame)
        await trio.lowlevel.checkpoint()

    async def subscribe(self, topic: str) -> None:
        await trio.lowlevel.checkpoint()  # first: a cancelled subscribe has no effect
        self._check_open()
        self._topics.add(topic)
        self._network._topics.setdefault(topic, {})[self._peer] = None

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)
        members = self._network._topics.get(topic)
        if members is not None:
            members.pop(self._peer, None)
        await trio.lowlevel.checkpoint()

    def trusted_route(self, peer: PeerId) -> bool:
        """Whether direct frames to ``peer`` stay between two trusted-local endpoints of this
        network (then the bus sends them unsigned; see ``docs/wire.md``)."""
        return self._network._trusts(self._peer, peer) and peer in self._network._transports

    async def receive(self) -> InboundFrame:
        return await self._inbox.get()

    async def receive_batch(self, max_frames: int) -> list[InboundFrame]:
        return await self._inbox.get_batch(max_frames)

    async def open_bulk(self, peer: PeerId) -> MemoryBulkStream:
        """A bulk stream to ``peer`` (no latency or loss; partitions and cuts apply)."""
        self._check_open()
        await trio.lowlevel.checkpoint()
        return self._network._open_bulk(self._peer, peer)

    async def accept_bulk(self) -> tuple[PeerId, MemoryBulkStream]:
        """The next inbound bulk stream; raises ``TransportClosed`` once closed."""
        try:
            return await self._bulk_receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(f"transport of {self._peer.short()} is closed") from None

    async def aclose(self) -> None:
        self._inbox.close()
        self._bulk_send.close()
        self._network._detach(self._peer)
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> MemoryTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

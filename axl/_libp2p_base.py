"""Shared state of the libp2p transport's parts (links, discovery, limits), and helpers.

:class:`TransportBase` holds what every part of :class:`~axl.Libp2pTransport` reads or writes;
the parts are mixins over it (:mod:`axl._libp2p_links`, :mod:`axl._libp2p_discovery`,
:mod:`axl._libp2p_limits`), composed in :mod:`axl._libp2p`.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

import trio

from ._errors import FrameTooLarge, InvalidPeerId, TransportClosed
from ._identity import Identity, PeerId
from ._libp2p_announce import AnnouncementLedger, HearsayLedger
from ._libp2p_budget import Budgets, Refusal
from ._libp2p_config import Libp2pConfig
from ._libp2p_framing import Backoff, TokenBucket
from ._libp2p_peer_list import PeerListCache
from ._stats import Counters
from ._transport import InboundFrame

if TYPE_CHECKING:  # libp2p is imported lazily: it takes most of a second to import.
    from libp2p.abc import IHost, INetStream
    from libp2p.pubsub.pubsub import Pubsub

    from ._libp2p_dht import Dht


class Link:
    """Our outbound side towards one peer: a bounded queue and the writer task's state."""

    __slots__ = ("error", "peer", "ready", "receive", "scope", "send")

    def __init__(self, peer: PeerId, capacity: int) -> None:
        self.peer = peer
        self.send, self.receive = trio.open_memory_channel[bytes](capacity)
        self.ready = trio.Event()
        self.error: BaseException | None = None
        self.scope = trio.CancelScope()


PEER_IDS_KEPT = 4096
"""Peer ids :func:`peer_id_of` remembers (all of them forgotten at once past this)."""
_peer_ids: dict[bytes, PeerId] = {}


def peer_id_of(raw: bytes | bytearray | memoryview) -> PeerId | None:
    """The AXL peer id of a raw libp2p peer id, or None for one that is not (not Ed25519).

    Remembered per raw id: the transport converts the same few dozen ids over and over (every
    topic message, connection event, membership count), and building one validates it. A
    flood of distinct ids only refills the bounded table; refused ids are not kept."""
    key = raw if type(raw) is bytes else bytes(raw)  # a hashable, immutable copy
    peer = _peer_ids.get(key)
    if peer is not None:
        return peer
    try:
        peer = PeerId(key)
    except InvalidPeerId:
        return None
    if len(_peer_ids) >= PEER_IDS_KEPT:
        _peer_ids.clear()
    _peer_ids[peer.raw] = peer
    return peer


def unblock_dial(host: Any, pid: Any) -> None:
    """Lift py-libp2p's negative dial cache for ``pid``: after every address of a peer failed
    once it refuses to dial it for 60 s, so a node restarted on its address stayed unreachable
    that long. The transport's own :class:`Backoff` paces re-dials instead."""
    with suppress(Exception):
        host.get_network().unblock_peer(pid)


async def reset_stream(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1.0), suppress(Exception):
        await stream.reset()


class TransportBase:
    """State shared by the transport's parts; see :class:`~axl.Libp2pTransport`."""

    def __init__(self, identity: Identity, config: Libp2pConfig | None = None) -> None:
        self.identity = identity
        self.config = config or Libp2pConfig()
        self.stats = Counters()
        self._peer = identity.peer_id
        self._inbox_send, self._inbox_receive = trio.open_memory_channel[InboundFrame](
            self.config.inbox_capacity
        )
        self._links: dict[PeerId, Link] = {}
        self._backoff = Backoff(self.config.reconnect_base, self.config.reconnect_max)
        self._announcements = AnnouncementLedger()  # newest address announcement per peer
        self._hearsay = HearsayLedger()  # peers known only from announcements and peer lists
        self._peer_list = PeerListCache()  # what we answer on PEER_LIST_PROTOCOL
        self._banned: dict[PeerId, float] = {}
        self._inbound_streams: dict[PeerId, int] = {}
        self._buckets: dict[PeerId, TokenBucket] = {}
        self._topics: dict[str, object] = {}  # subscribed topics (a token per subscribe)
        self._known: set[PeerId] = set()
        self._announce_wanted = trio.Event()
        self._disconnected = trio.Event()
        self._host: IHost | None = None
        self._pubsub: Pubsub | None = None
        self._dht: Dht | None = None
        self._nursery: trio.Nursery | None = None
        self._run_scope: trio.CancelScope | None = None
        self._closed = False
        self._stopped = trio.Event()
        self._close_requested = trio.Event()
        self._budgets = Budgets(
            max_connections=self.config.max_connections,
            max_connections_per_ip=self.config.max_connections_per_ip,
            max_buffered_bytes=self.config.max_buffered_bytes,
        )

    def _refused(self, reason: Refusal) -> None:
        self.stats.inc(f"inbound.refused_{reason}")

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_frame_size(self, frame: bytes) -> None:
        if len(frame) > self.config.max_frame_size:
            raise FrameTooLarge(
                f"frame of {len(frame)} bytes exceeds the transport cap "
                f"{self.config.max_frame_size}"
            )

    def _check_open(self) -> IHost:
        if self._closed or self._host is None:
            raise TransportClosed(f"transport of {self._peer.short()} is closed")
        return self._host

    def _lift_backoff(self, peer: PeerId) -> bool:
        """Forget ``peer``'s dial failures (it is reachable again, or at new addresses): its
        backoff must not keep refusing sends. Returns whether there was one, counted."""
        if not self._backoff.retry_at(peer):
            return False
        self._backoff.succeeded(peer)
        self.stats.inc("peers.backoff_cleared")
        return True

    def _learned_by_hearsay(self, peer: PeerId) -> None:
        """``peer``'s addresses came from an announcement or a peer list: past the hearsay
        cap the oldest such peer's addresses are forgotten (see :class:`HearsayLedger`)."""
        evicted = self._hearsay.learned(peer)
        if evicted is None or self._host is None:
            return
        from libp2p.peer.id import ID

        with suppress(Exception):
            self._host.get_peerstore().clear_addrs(ID(evicted.raw))
        self.stats.inc("peers.hearsay_forgotten")

    def _note_peer(self, peer: PeerId) -> None:
        if peer not in self._known and peer != self._peer:
            if len(self._known) >= 100_000:  # bounded; forgetting only costs an announcement
                self._known.clear()
            self._known.add(peer)
            self._announce_wanted.set()

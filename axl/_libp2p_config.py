"""Settings and protocol constants of the libp2p transport (:mod:`axl._libp2p`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROTOCOL_ID = "/axl/1.0.0"
PEER_EXCHANGE_TOPIC = "_axl/peers/1"
"""Reserved gossip topic on which nodes announce their listen addresses."""
PEER_LIST_PROTOCOL = "/axl/peers/1.0.0"
"""A node answers a stream on this protocol with the peers it knows (``<peer id> <addr>``
lines) and closes it; nodes ask their bootstrap peers, so a newcomer learns the swarm at once."""

_READ_CHUNK = 1 << 16
_MAX_ANNOUNCED_ADDRS = 16
_MAX_ANNOUNCE_BYTES = 4096
_ADDR_TTL = 600.0
_MAX_PEER_LIST = 256
_MAX_PEER_LIST_BYTES = 64 * 1024


@dataclass(frozen=True)
class Libp2pConfig:
    """Settings of a :class:`Libp2pTransport`. Times are in seconds.

    The defaults suit a LAN or loopback; ``listen`` binds an ephemeral TCP port on 127.0.0.1.
    """

    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    """Multiaddrs to listen on (TCP; ``/udp/…/quic-v1`` is not supported, see the docs)."""
    bootstrap: tuple[str, ...] = ()
    """Multiaddrs with ``/p2p/<peer id>`` to connect to at start-up (and re-dial with backoff)."""
    max_frame_size: int = 1 << 20
    """Largest frame accepted or sent (the bus's default cap, 1 MiB); a peer announcing a
    bigger one has its stream reset and is cut off. GossipSub RPCs may be 4 KiB larger (their
    own framing around the AXL frame)."""
    send_queue: int = 1024
    """Frames queued per destination peer before ``send`` waits."""
    max_batch_bytes: int = 256 * 1024
    """Most bytes the writer packs into one stream write."""
    inbox_capacity: int = 4096
    """Inbound frames waiting for ``receive``; direct readers wait, topic frames are dropped."""
    rate_limit: float = 20_000.0
    """Inbound direct frames per second allowed per peer (sustained)."""
    rate_burst: int = 20_000
    """Inbound direct frames a peer may send in a burst."""
    max_inbound_streams: int = 4
    """Concurrent ``/axl/1.0.0`` streams accepted from one peer."""
    max_connections: int = 200
    """Inbound connections open at once, from everybody (refused before the handshake).
    py-libp2p's own caps (250 inbound, 300 in all) still apply above this."""
    max_connections_per_ip: int = 64
    """Inbound connections open at once from one IP address."""
    max_buffered_bytes: int = 32 << 20
    """Bytes held for partly received frames, across all inbound streams; a stream whose
    partial frame would go over is reset (the peer is not banned: it may be honest)."""
    partial_frame_timeout: float = 10.0
    """A frame that stays partly received this long resets its stream (slowloris)."""
    dial_timeout: float = 5.0
    """Connecting and opening a stream to a peer must finish within this time."""
    write_timeout: float = 10.0
    """A stream write that cannot finish in this time (the peer stopped reading) drops the
    link: queued frames are discarded and ``send`` raises :class:`PeerUnreachable`."""
    link_idle_timeout: float = 300.0
    """An outbound stream with nothing to send for this long is closed (reopened on demand)."""
    reconnect_base: float = 0.25
    """First backoff after a failed dial; doubles per failure up to ``reconnect_max``."""
    reconnect_max: float = 15.0
    ban_time: float = 60.0
    """How long a peer that violated the protocol is refused."""
    gossip_degree: int = 3
    """GossipSub mesh degree D. Every mesh peer forwards each message once, so a node receives
    about D copies of every message; 3 (with gossip to non-mesh peers every heartbeat) keeps
    delivery complete at a third of the copies of libp2p's 6 (docs/libp2p.md)."""
    gossip_degree_low: int = 2
    gossip_degree_high: int = 5
    """A GRAFT that would grow a mesh past this is refused (PRUNE). Links a mesh has are not
    pruned for degree: py-libp2p's degree pruning (a PRUNE with a 60 s backoff per link)
    collapsed the meshes of dense swarms (docs/libp2p.md)."""
    gossip_heartbeat: float = 1.0
    """Seconds between GossipSub heartbeats: mesh repair (GRAFT up to D below D_low; no
    pruning, see ``gossip_degree_high``), IHAVE gossip, fanout expiry, and the message
    cache's shift (it keeps ``gossip_history`` heartbeats of messages)."""
    gossip_lazy: int = 3
    """Non-mesh peers sent IHAVE (the ids of the last ``gossip_window`` heartbeats' messages)
    per topic per heartbeat, at least; more when ``gossip_factor`` of the topic's non-mesh
    peers is more. libp2p's D_lazy is 6: each IHAVE costs its receiver a parse and a
    seen-cache check per id, every second."""
    gossip_factor: float = 0.0
    """The share of a topic's non-mesh peers sent IHAVE per heartbeat when that is more than
    ``gossip_lazy`` (libp2p's 0.25). 0: ``gossip_lazy`` peers whatever the swarm's size.
    With choking a message every node holds is still announced to each node by ~3 peers
    a heartbeat at 40 nodes, and a quarter of the peers cost ~9 IHAVEs a second per node
    (docs/libp2p.md, "Issue 12, the sixteenth round")."""
    gossip_choke: bool = True
    """Ask a mesh peer whose copies of an origin's messages arrive second to stop pushing
    them (a CHOKE; see ``axl/_libp2p_choke.py``): each message then travels a tree of first
    arrivals, about one copy per node instead of one per mesh link, and IHAVE gossip repairs
    the tree. Peers that do not say they speak it are never choked."""
    gossip_iwant_grace: float = 0.5
    """With choking, how long the ids an IHAVE announces get to arrive down the tree before
    they are asked for (IWANT); one that arrives that way unchokes its origin's tree."""
    gossip_window: int = 2
    gossip_history: int = 5
    sign_gossip: bool = False
    """py-libp2p's own signature on every gossip message, on top of the AXL envelope's. Off
    by default (see docs/libp2p.md, "Gossip signing"); every node of a swarm must agree: a
    node with it on drops the others' unsigned messages."""
    peer_exchange: bool = True
    """Announce our addresses on :data:`PEER_EXCHANGE_TOPIC`, learn the others', and serve and
    ask bootstrap peers for peer lists (:data:`PEER_LIST_PROTOCOL`)."""
    announce_interval: float = 15.0
    """Longest pause between two announcements while a node starts (they start at 0.5 s and
    back off to this; meeting a new peer meanwhile brings the next one forward)."""
    announce_settled: float = 120.0
    """Pause between announcements after the start phase (at most half the 600 s that
    peerstores keep an announced address); meeting new peers then causes none. Also the
    longest pause between two peer-list requests to a bootstrap peer."""
    target_peers: int = 12
    """Connections the transport keeps open by dialling known peers at random when it has
    fewer (py-libp2p's own auto-connector, which dials every known peer, is stopped); more
    come from peers dialling us and from direct sends."""
    enable_mdns: bool = False
    """py-libp2p's mDNS discovery (LAN multicast; needs ``zeroconf``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``libp2p.new_host`` (advanced)."""

    def __post_init__(self) -> None:
        if self.max_frame_size < 1 or self.send_queue < 1 or self.inbox_capacity < 1:
            raise ValueError("max_frame_size, send_queue and inbox_capacity must be >= 1")
        if self.rate_limit <= 0 or self.rate_burst < 1 or self.max_inbound_streams < 1:
            raise ValueError("rate_limit, rate_burst and max_inbound_streams must be positive")
        if min(self.max_connections, self.max_connections_per_ip, self.max_buffered_bytes) < 1:
            raise ValueError("connection and buffer budgets must be >= 1")
        if not 0 < self.announce_interval <= self.announce_settled <= _ADDR_TTL / 2:
            raise ValueError("need 0 < announce_interval <= announce_settled <= 300 s")
        if self.gossip_heartbeat <= 0 or self.gossip_lazy < 0 or not 0 <= self.gossip_factor <= 1:
            raise ValueError("need gossip_heartbeat > 0, gossip_lazy >= 0, 0 <= gossip_factor <= 1")
        if self.gossip_iwant_grace < 0:
            raise ValueError("gossip_iwant_grace must be >= 0")
        if not 1 <= self.gossip_window <= self.gossip_history:
            raise ValueError("need 1 <= gossip_window <= gossip_history")
        if self.partial_frame_timeout <= 0:
            raise ValueError("partial_frame_timeout must be positive")
        if "sec_opt" in self.extra:
            raise ValueError("the transport's security is Noise only; extra cannot set sec_opt")

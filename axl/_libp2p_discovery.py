"""Connecting and discovery for the libp2p transport: dialling, staying connected to
bootstrap peers, and the built-in peer exchange (peer lists on :data:`PEER_LIST_PROTOCOL`,
address announcements on :data:`PEER_EXCHANGE_TOPIC`)."""

from __future__ import annotations

import logging
import math
import random
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import trio

from ._errors import PeerUnreachable
from ._identity import PeerId
from ._libp2p_announce import AnnounceSchedule, read_announcement, sign_announcement
from ._libp2p_base import TransportBase, peer_id_of, reset_stream, unblock_dial
from ._libp2p_config import (
    _ADDR_TTL,
    _MAX_ANNOUNCE_BYTES,
    _MAX_ANNOUNCED_ADDRS,
    _MAX_PEER_LIST,
    _MAX_PEER_LIST_BYTES,
    PEER_EXCHANGE_TOPIC,
    PEER_LIST_PROTOCOL,
)
from ._libp2p_framing import Backoff

if TYPE_CHECKING:
    from libp2p.abc import INetStream
    from libp2p.pubsub.pubsub import Pubsub

logger = logging.getLogger("axl.libp2p")
_TOPIC_PEER_POLL = 0.05
"""How often a node that has an announcement to make checks for a peer on the topic, s."""


class DiscoveryMixin(TransportBase):
    """Dialling, bootstrap re-dials and peer exchange."""

    # -- connecting --------------------------------------------------------------------------

    async def connect(self, addr: str) -> PeerId:
        """Dial a multiaddr that ends in ``/p2p/<peer id>``; return that peer's id.

        Raises :class:`PeerUnreachable` if the dial fails or times out, ``ValueError`` for an
        address without a peer id.
        """
        import multiaddr
        from libp2p.peer.peerinfo import info_from_p2p_addr

        host = self._check_open()
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:
            raise ValueError(f"not a multiaddr with a /p2p/ peer id: {addr!r}") from exc
        peer = peer_id_of(info.peer_id.to_bytes())
        if peer is None:
            raise ValueError(f"{addr!r} names a non-Ed25519 peer; AXL peers use Ed25519 keys")
        unblock_dial(host, info.peer_id)  # our backoff paces re-dials, not py-libp2p's 60 s
        try:
            with trio.fail_after(self.config.dial_timeout):
                await host.connect(info)
        except trio.TooSlowError as exc:
            raise PeerUnreachable(f"dialling {addr} timed out") from exc
        except Exception as exc:
            raise PeerUnreachable(f"could not dial {addr}: {exc}") from exc
        self._note_peer(peer)
        return peer

    async def _keep_connected(
        self, addr: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Stay connected to a bootstrap peer, re-dialling with backoff. Reports started after
        the first attempt, whatever its outcome."""
        backoff = Backoff(self.config.reconnect_base, self.config.reconnect_max)
        host = self._check_open()
        from libp2p.peer.id import ID

        while True:
            try:
                peer = await self.connect(addr)
            except PeerUnreachable as exc:
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                retry_at = backoff.failed(addr, trio.current_time())
                logger.info("bootstrap %s unreachable (%s); retrying", addr, exc)
                self.stats.inc("bootstrap.failed")
                await trio.sleep_until(retry_at)
                continue
            except ValueError:
                logger.error("bad bootstrap address %r", addr)
                task_status.started()
                return
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            backoff.succeeded(addr)
            self.stats.inc("bootstrap.connected")
            pause = 1.0
            pid = ID(peer.raw)
            network = host.get_network()
            while network.connections.get(pid):
                if self.config.peer_exchange:
                    await self._ask_peer_list(peer)
                # Ask again later (newcomers keep arriving), or re-dial once disconnected from
                # this peer. Other peers' disconnections wake us too (one event for all): that
                # is no reason to ask again, or a churning swarm asks its bootstrap peer once
                # per disconnection per node.
                deadline = trio.current_time() + pause
                while network.connections.get(pid) and trio.current_time() < deadline:
                    with trio.move_on_at(deadline):
                        await self._disconnected.wait()
                pause = min(pause * 2, self.config.announce_settled)

    # -- peer exchange -----------------------------------------------------------------------

    async def _serve_peer_list(self, stream: INetStream) -> None:
        """Answer ``/axl/peers/1.0.0``: our known peers with their addresses, then close."""
        try:
            data = self._peer_list.get(trio.current_time(), self._build_peer_list)
            with trio.fail_after(5.0):
                await stream.write(data)
                # Served once written: the asker may reset the stream as soon as it has read
                # the list, before our close is done.
                self.stats.inc("peer_list.served")
                await stream.close()
        except Exception as exc:
            logger.debug("serving the peer list failed: %r", exc)
            await reset_stream(stream)

    def _build_peer_list(self) -> bytes:
        """Our known peers with up to four addresses each, and ourselves, one line each."""
        host = self._check_open()
        store = host.get_peerstore()
        lines: list[str] = []
        for pid in store.peers_with_addrs()[:_MAX_PEER_LIST]:
            peer = peer_id_of(pid.to_bytes())
            if peer is None or peer == self._peer:
                continue
            with suppress(Exception):
                lines.extend(f"{peer} {addr}" for addr in store.addrs(pid)[:4])
        lines.extend(f"{self._peer} {addr}" for addr in host.get_transport_addrs())
        self.stats.inc("peer_list.built")
        return "\n".join(lines).encode()[:_MAX_PEER_LIST_BYTES]

    async def _ask_peer_list(self, peer: PeerId) -> None:
        """Fetch a peer's peer list (bounded in size and time) into our peerstore."""
        import multiaddr
        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID

        host = self._check_open()
        data = b""
        try:
            with trio.fail_after(self.config.dial_timeout):
                stream = await host.new_stream(ID(peer.raw), [TProtocol(PEER_LIST_PROTOCOL)])
                try:
                    while len(data) < _MAX_PEER_LIST_BYTES:
                        chunk = await stream.read(_MAX_PEER_LIST_BYTES)
                        if not chunk:
                            break
                        data += chunk
                except Exception:  # StreamEOF: the list is complete
                    pass
                finally:
                    await reset_stream(stream)
        except Exception as exc:
            logger.debug("asking %s for peers failed: %r", peer.short(), exc)
            return
        store = host.get_peerstore()
        learned = 0
        for line in data.decode("utf-8", "replace").splitlines()[: 4 * _MAX_PEER_LIST]:
            text, _, addr_text = line.partition(" ")
            try:
                other = PeerId.from_string(text)
                addr = multiaddr.Multiaddr(addr_text)
            except Exception:
                continue
            if other == self._peer:
                continue
            # Addresses are not signed here; dialling checks the peer id (Noise), so a wrong
            # address costs a failed dial and nothing else.
            store.add_addrs(ID(other.raw), [addr], int(_ADDR_TTL))
            self._learned_by_hearsay(other)
            self._note_peer(other)
            learned += 1
        self.stats.inc("peer_list.learned", learned)

    async def _keep_peers(self) -> None:
        """Hold about ``target_peers`` connections: every second, dial random known peers (not
        in backoff) while fewer are connected. Replaces py-libp2p's auto-connector, which aims
        at 200 connections, dials every peer in the peerstore and churned connections (an idle
        host with five peers spent about 35 ms of CPU a second)."""
        from libp2p.peer.id import ID
        from libp2p.peer.peerinfo import PeerInfo

        host = self._check_open()
        network: Any = host.get_network()
        pick = random.Random()
        while True:
            if getattr(network.auto_connector, "_started", False):  # py-libp2p may (re)start it
                with suppress(Exception):
                    await network.auto_connector.stop()
            await trio.sleep(1.0)
            if len(network.connections) >= self.config.target_peers:
                continue  # the usual case: no ids to convert
            connected = {peer_id_of(pid.to_bytes()) for pid in host.get_connected_peers()}
            missing = self.config.target_peers - len(connected)
            if missing <= 0:
                continue
            now = trio.current_time()
            candidates = [
                peer
                for peer in map(
                    peer_id_of, (p.to_bytes() for p in host.get_peerstore().peers_with_addrs())
                )
                if peer is not None
                and peer != self._peer
                and peer not in connected
                and peer not in self._links
                and self._backoff.retry_at(peer) <= now
            ]
            async with trio.open_nursery() as dials:
                for peer in pick.sample(candidates, min(missing, len(candidates))):
                    dials.start_soon(self._dial_known, host, PeerInfo, ID(peer.raw), peer)

    async def _dial_known(self, host: Any, info: Any, pid: Any, peer: PeerId) -> None:
        try:
            addrs = host.get_peerstore().addrs(pid)
            unblock_dial(host, pid)
            with trio.fail_after(self.config.dial_timeout):
                await host.connect(info(pid, addrs))
        except Exception as exc:
            self._backoff.failed(peer, trio.current_time())
            self.stats.inc("peers.dial_failed")
            logger.debug("dialling %s failed: %s", peer.short(), str(exc).split("\n")[0])
        else:
            self._backoff.succeeded(peer)
            self.stats.inc("peers.dialled")

    async def _start_peer_exchange(self, nursery: trio.Nursery, pubsub: Pubsub) -> None:
        subscription = await pubsub.subscribe(PEER_EXCHANGE_TOPIC)
        nursery.start_soon(self._read_announcements, subscription)
        nursery.start_soon(self._announce_loop, pubsub)

    async def _announce_loop(self, pubsub: Pubsub) -> None:
        """Announce our addresses on an :class:`AnnounceSchedule`: often while we start (and
        soon after meeting a new peer then, at most once a second, so a forming swarm does not
        flood itself: every announcement reaches every node), then every
        ``announce_settled`` s."""
        schedule = AnnounceSchedule(self.config.announce_interval, self.config.announce_settled)
        last = -math.inf
        while True:
            with trio.move_on_after(schedule.next_pause()):
                while True:
                    await self._announce_wanted.wait()
                    self._announce_wanted = trio.Event()
                    if schedule.starting:
                        # let the new peer's subscriptions arrive, and coalesce bursts
                        await trio.sleep(max(0.2, last + 1.0 - trio.current_time()))
                        break
                    self.stats.inc("peer_exchange.newcomer_quiet")  # settled: no announcement
            self._announce_wanted = trio.Event()
            await self._await_topic_peer(pubsub)
            assert self._host is not None
            addrs = [str(addr) for addr in self._host.get_transport_addrs()]
            payload = sign_announcement(self.identity, addrs[:_MAX_ANNOUNCED_ADDRS])
            with suppress(Exception):
                await pubsub.publish(PEER_EXCHANGE_TOPIC, payload)
                self.stats.inc("peer_exchange.announced")
            last = trio.current_time()

    async def _await_topic_peer(self, pubsub: Pubsub) -> None:
        """Return once a peer is known to be on :data:`PEER_EXCHANGE_TOPIC`. An announcement
        published before that goes nowhere: a third of those a 40-node swarm sent while it
        formed were lost so, most nodes' first two (docs/libp2p.md, the tenth round)."""
        if pubsub.peer_topics.get(PEER_EXCHANGE_TOPIC):
            return
        self.stats.inc("peer_exchange.waited_for_topic_peer")
        # py-libp2p signals no peer's subscription; the wait is short (until a first hello)
        while not pubsub.peer_topics.get(PEER_EXCHANGE_TOPIC):  # noqa: ASYNC110
            await trio.sleep(_TOPIC_PEER_POLL)

    async def _read_announcements(self, subscription: Any) -> None:
        import multiaddr
        from libp2p.peer.id import ID

        own = self._peer.raw
        async for message in subscription:
            origin = bytes(message.from_id)
            peer = peer_id_of(origin)
            data = bytes(message.data)
            if peer is None or origin == own or len(data) > _MAX_ANNOUNCE_BYTES:
                continue
            # Signed by the origin itself: gossip carries no libp2p signature (docs/libp2p.md).
            announced = read_announcement(peer, data)
            if isinstance(announced, str):
                self.stats.inc("peer_exchange.refused." + announced)
                continue
            if not self._announcements.accept(peer, announced.stamp):
                self.stats.inc("peer_exchange.superseded")  # older than one already taken
                continue
            addrs = []
            for line in announced.addrs[:_MAX_ANNOUNCED_ADDRS]:
                try:
                    addr = multiaddr.Multiaddr(line)
                except Exception:
                    continue
                if "p2p" not in [proto.name for proto in addr.protocols()]:
                    addrs.append(addr)
            if addrs and self._host is not None:
                self._learn_announced(peer, ID(origin), addrs)

    def _learn_announced(self, peer: PeerId, pid: Any, addrs: list[Any]) -> None:
        """Take a peer's newest signed addresses. They replace what the peerstore held for it
        (py-libp2p dials one TCP address per peer, the first it holds: a node restarted on a
        new port was dialled at its dead port for as long as that stayed stored), unless one
        is unspecified (``0.0.0.0``, ``::``: only dialable on the same machine), which adds.
        New addresses also lift the peer's dial backoff, built up against the old ones."""
        assert self._host is not None
        store = self._host.get_peerstore()
        try:
            known = list(store.addrs(pid))
        except Exception:  # PeerStoreError: unknown or expired
            known = []
        if all(_specific(addr) for addr in addrs):
            store.clear_addrs(pid)
        store.add_addrs(pid, addrs, int(_ADDR_TTL))
        self._learned_by_hearsay(peer)
        self.stats.inc("peer_exchange.learned")
        if any(addr not in known for addr in addrs) and self._lift_backoff(peer):
            unblock_dial(self._host, pid)
        self._note_peer(peer)


def _specific(addr: Any) -> bool:
    """Whether a multiaddr names a specific IP (not ``0.0.0.0`` or ``::``)."""
    text = str(addr) + "/"
    return "/ip4/0.0.0.0/" not in text and "/ip6/::/" not in text

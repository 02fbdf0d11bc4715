"""When nodes announce their addresses: often while starting, rarely once settled, and a
newcomer does not make a settled swarm re-announce (every announcement reaches every node)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import trio

from axl import Identity, Libp2pConfig, Libp2pTransport, PeerUnreachable
from axl._libp2p_announce import AnnouncementLedger, AnnounceSchedule, sign_announcement

from .clusters import bootstrapped_pair, eventually


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0x60 + n]) * 32)


def test_the_schedule_announces_often_while_starting_then_rarely() -> None:
    schedule = AnnounceSchedule(interval=15.0, settled=120.0)
    pauses, starting = [], []
    for _ in range(8):
        pauses.append(schedule.next_pause())
        starting.append(schedule.starting)
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 120.0, 120.0]
    assert starting == [True] * 6 + [False] * 2


def test_the_settled_pause_stays_within_the_address_lifetime() -> None:
    with pytest.raises(ValueError):
        Libp2pConfig(announce_settled=301.0)  # peerstores keep an address 600 s
    with pytest.raises(ValueError):
        Libp2pConfig(announce_interval=20.0, announce_settled=10.0)
    with pytest.raises(ValueError):
        AnnounceSchedule(interval=0.0, settled=1.0)


async def test_a_newcomer_is_learned_without_the_settled_swarm_re_announcing() -> None:
    """Each settled node used to announce to the whole swarm on meeting a newcomer (n
    announcements reaching n nodes per join). Now the newcomer's own announcements tell the
    swarm about it, and its bootstrap peer's list tells it about the swarm."""
    config = Libp2pConfig(
        gossip_heartbeat=0.2,
        dial_timeout=3.0,
        announce_interval=1.0,  # start phase: announcements at 0.5 s and 1.5 s
        announce_settled=300.0,  # then none for the rest of the test
        target_peers=2,  # the newcomer connects to few: the others learn it by announcement
    )
    async with Libp2pTransport.open(identity(0), config=config) as boot:
        addrs = boot.listen_addrs
        async with (
            Libp2pTransport.open(identity(1), bootstrap=addrs, config=config) as a,
            Libp2pTransport.open(identity(2), bootstrap=addrs, config=config) as b,
            Libp2pTransport.open(identity(3), bootstrap=addrs, config=config) as c,
        ):
            settled = [boot, a, b, c]
            everyone = {node.local_peer for node in settled}
            await eventually(
                lambda: all(
                    n.known_peers() >= everyone - {n.local_peer}
                    and n.stats["peer_exchange.announced"] >= 2
                    for n in settled
                ),
                timeout=30,
            )
            before = [n.stats["peer_exchange.announced"] for n in settled]
            async with Libp2pTransport.open(identity(4), bootstrap=addrs, config=config) as new:
                everyone.add(new.local_peer)
                nodes = [*settled, new]
                await eventually(
                    lambda: all(n.known_peers() >= everyone - {n.local_peer} for n in nodes),
                    timeout=30,
                )
                # Every settled node has met the newcomer: it kept quiet, or (as it used
                # to) announced.
                await eventually(
                    lambda: all(
                        n.stats["peer_exchange.newcomer_quiet"] >= 1
                        or n.stats["peer_exchange.announced"] > count
                        for n, count in zip(settled, before, strict=True)
                    ),
                    timeout=30,
                )
                assert [n.stats["peer_exchange.announced"] for n in settled] == before
                assert new.stats["peer_exchange.announced"] >= 1


async def test_a_node_holds_its_announcement_until_a_peer_is_on_the_topic() -> None:
    """An announcement published with no peer on the peer-exchange topic goes nowhere (a third
    of a forming 40-node swarm's were lost so). A node waits for one, then announces."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, announce_interval=1.0)
    async with Libp2pTransport.open(identity(5), config=config) as alone:
        await trio.sleep(1.2)  # past the first announcement's time (0.5 s)
        assert alone.stats["peer_exchange.announced"] == 0
        assert alone.stats["peer_exchange.waited_for_topic_peer"] == 1
        async with Libp2pTransport.open(
            identity(6), bootstrap=alone.listen_addrs, config=config
        ) as other:
            await eventually(lambda: alone.stats["peer_exchange.announced"] >= 1, timeout=10)
            # the held announcement reached the peer that ended the wait
            await eventually(lambda: other.stats["peer_exchange.learned"] >= 1, timeout=10)


async def test_other_peers_disconnecting_do_not_make_a_node_re_ask_its_bootstrap_peer() -> None:
    """A node re-asks its bootstrap peer for the peer list on a doubling pause; every
    disconnection anywhere used to wake it into asking again at once (in a churning swarm,
    once per disconnection per node, all at the bootstrap peer)."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0)
    async with bootstrapped_pair(identity(10), identity(11), config) as (boot, a):
        before = boot.stats["peer_list.served"]
        signals = 10
        for _ in range(signals):
            # What the network notifee does when one of a's connections (not the one to
            # its bootstrap peer) closes.
            closed, a._disconnected = a._disconnected, trio.Event()
            closed.set()
            await trio.sleep(0.2)
        # Scheduled asks only: pauses of 1, 2, 4 s … in these 2 s (one per signal before).
        assert boot.stats["peer_list.served"] - before < signals // 2, boot.stats


def test_the_ledger_takes_only_newer_announcements_and_stays_bounded() -> None:
    ledger = AnnouncementLedger(capacity=2)
    a, b, c = (identity(20 + i).peer_id for i in range(3))
    assert ledger.accept(a, 100.0)
    assert not ledger.accept(a, 100.0)  # the same one again
    assert not ledger.accept(a, 99.0)  # an older one, late or replayed
    assert ledger.accept(a, 101.0)
    assert ledger.accept(b, 5.0) and ledger.accept(c, 5.0)
    assert len(ledger) == 2  # a, announced least recently, is forgotten
    assert ledger.accept(a, 50.0)  # and taken as on first sight


class _Message:
    def __init__(self, origin: Identity, data: bytes) -> None:
        self.from_id = origin.peer_id.raw
        self.data = data


async def _feed(messages: list[_Message]) -> AsyncIterator[_Message]:
    for message in messages:
        yield message


async def test_an_older_announcement_cannot_roll_a_peers_addresses_back() -> None:
    """Addresses from a peer's newest signed announcement replace the ones held for it; a
    replay of its earlier announcement (valid signature, not yet expired) is superseded."""
    from libp2p.peer.id import ID

    victim = identity(30)
    now = time.time()
    old = sign_announcement(victim, ["/ip4/127.0.0.1/tcp/4001"], now=now - 60)
    new = sign_announcement(victim, ["/ip4/127.0.0.1/tcp/4002"], now=now)
    async with Libp2pTransport.open(identity(31)) as node:
        await node._read_announcements(_feed([_Message(victim, old), _Message(victim, new)]))
        store = node._host.get_peerstore()  # type: ignore[union-attr]
        assert [str(a) for a in store.addrs(ID(victim.peer_id.raw))] == ["/ip4/127.0.0.1/tcp/4002"]
        await node._read_announcements(_feed([_Message(victim, old)]))  # the replay
        assert [str(a) for a in store.addrs(ID(victim.peer_id.raw))] == ["/ip4/127.0.0.1/tcp/4002"]
        assert node.stats["peer_exchange.superseded"] == 1


async def test_a_peer_restarted_on_a_new_port_is_reached_there() -> None:
    """A node restarted with its identity on a new port, connected only to its bootstrap
    peer: a peer that had sent to it at the old port reaches it at the new one. py-libp2p
    dials a single TCP address per peer (the first stored), so while the dead port stayed
    first in the peerstore, sends failed until it expired (seen at 40 processes after churn:
    "no addresses established" for up to 30 s)."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=2.0, announce_interval=1.0)
    lonely = Libp2pConfig(
        gossip_heartbeat=0.2, dial_timeout=2.0, announce_interval=1.0, target_peers=1
    )
    async with Libp2pTransport.open(identity(40), config=config) as boot:
        boots = boot.listen_addrs
        async with Libp2pTransport.open(identity(41), bootstrap=boots, config=config) as sender:
            async with Libp2pTransport.open(identity(42), bootstrap=boots, config=lonely) as first:
                await eventually(lambda: first.local_peer in sender.known_peers())
                await sender.send(first.local_peer, b"before")
                with trio.fail_after(10):
                    assert (await first.receive()).frame == b"before"
                old_addrs = first.listen_addrs
            async with Libp2pTransport.open(identity(42), bootstrap=boots, config=lonely) as again:
                assert again.listen_addrs != old_addrs
                delivered = False
                with trio.move_on_after(20):
                    while not delivered:
                        try:
                            await sender.send(again.local_peer, b"after")
                            delivered = True
                        except PeerUnreachable:
                            await trio.sleep(0.2)
                assert delivered, sender.stats
                with trio.fail_after(10):
                    assert (await again.receive()).frame == b"after"


def test_hearsay_is_capped_oldest_first_and_a_connected_peer_is_never_hearsay() -> None:
    from axl._libp2p_announce import HearsayLedger

    ledger = HearsayLedger(capacity=3, proven_capacity=2)
    peers = [identity(40 + n).peer_id for n in range(6)]
    assert [ledger.learned(p) for p in peers[:3]] == [None, None, None]
    assert ledger.learned(peers[0]) is None  # learned again: the most recent now
    assert ledger.learned(peers[3]) == peers[1]  # the oldest goes
    ledger.connected(peers[2])
    assert len(ledger) == 2 and ledger.learned(peers[2]) is None  # proven: never hearsay
    assert ledger.learned(peers[4]) is None and ledger.learned(peers[5]) == peers[0]
    with pytest.raises(ValueError):
        HearsayLedger(capacity=0)


async def test_a_flood_of_announced_identities_cannot_evict_the_peers_a_node_talks_to() -> None:
    """The attack: identities cost nothing and their announcements verify, so a peer floods
    the peer-exchange topic with 1,200 of them. py-libp2p's peerstore holds 1,000 peers and
    evicts the oldest with addresses first: the addresses of the peer a node is connected to
    went, and a send to it after a reconnect had none. Hearsay is capped on its own."""
    from libp2p.peer.id import ID

    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)
    async with (
        Libp2pTransport.open(identity(50), config=config) as node,
        Libp2pTransport.open(identity(51), config=config) as friend,
    ):
        await node.connect(friend.listen_addrs[0])
        store = node._host.get_peerstore()  # type: ignore[union-attr]
        friend_id = ID(friend.local_peer.raw)
        assert store.addrs(friend_id)
        sybils = [Identity.from_seed(n.to_bytes(32, "big")) for n in range(1, 1201)]
        flood = [
            _Message(sybil, sign_announcement(sybil, [f"/ip4/10.9.{n // 250}.{n % 250}/tcp/4001"]))
            for n, sybil in enumerate(sybils)
        ]
        await node._read_announcements(_feed(flood))
        assert node.stats["peer_exchange.learned"] == 1200  # every one verified
        held = {str(addr).split("/p2p/")[0] for addr in store.addrs(friend_id)}  # raises once gone
        assert held == {addr.split("/p2p/")[0] for addr in friend.listen_addrs}
        assert len(store.peers_with_addrs()) <= 512 + 2
        assert node.stats["peers.hearsay_forgotten"] == 1200 - 512

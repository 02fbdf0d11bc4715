"""When nodes announce their addresses: often while starting, rarely once settled, and a
newcomer does not make a settled swarm re-announce (every announcement reaches every node)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_announce import AnnounceSchedule


async def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


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


async def test_other_peers_disconnecting_do_not_make_a_node_re_ask_its_bootstrap_peer() -> None:
    """A node re-asks its bootstrap peer for the peer list on a doubling pause; every
    disconnection anywhere used to wake it into asking again at once (in a churning swarm,
    once per disconnection per node, all at the bootstrap peer)."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0)
    async with Libp2pTransport.open(identity(10), config=config) as boot:
        async with Libp2pTransport.open(
            identity(11), bootstrap=boot.listen_addrs, config=config
        ) as a:
            await eventually(lambda: boot.stats["peer_list.served"] >= 1)
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

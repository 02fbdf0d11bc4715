"""The peer list a node serves is built at most once a second, however often it is asked."""

from __future__ import annotations

import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_peer_list import PeerListCache

from .clusters import bootstrapped_pair, eventually


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0x70 + n]) * 32)


def test_a_list_is_served_as_built_for_a_second_then_built_again() -> None:
    builds: list[float] = []

    def build() -> bytes:
        builds.append(0.0)
        return str(len(builds)).encode()

    cache = PeerListCache(max_age=1.0)
    assert cache.get(10.0, build) == b"1"
    assert cache.get(10.5, build) == b"1"
    assert cache.get(10.99, build) == b"1"
    assert cache.get(11.0, build) == b"2"  # a second old: built again
    assert cache.get(5.0, build) == b"3"  # a clock that went back never serves a stale list
    assert len(builds) == 3


async def test_a_peer_asking_in_a_loop_costs_a_write_not_a_rebuild() -> None:
    """Hostile (or merely eager) askers: fifty asks in a burst are fifty answers from one or
    two builds. Every ask used to build the list afresh (a line per peer and address, ≈ 2 ms
    at 40 peers) on the bootstrap peer every newcomer waits for."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0)
    async with bootstrapped_pair(identity(0), identity(1), config) as (served, asker):
        served_before = served.stats["peer_list.served"]
        built_before = served.stats["peer_list.built"]
        start = trio.current_time()
        for _ in range(50):
            await asker._ask_peer_list(served.local_peer)
        elapsed = trio.current_time() - start
        # The server counts an answer once written, in its own task: the last may still be
        # on its way when our ask returns. (The asker's own timed asks may add one or two.)
        await eventually(lambda: served.stats["peer_list.served"] - served_before >= 50)
        # one build per second of asking, and one for the second the burst started in
        assert served.stats["peer_list.built"] - built_before <= int(elapsed) + 1
        assert asker.stats["peer_list.learned"] >= 50  # each answer still lists the peer


async def test_a_list_a_second_old_is_built_again_with_the_newcomers() -> None:
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0)
    async with bootstrapped_pair(identity(2), identity(3), config) as (hub, first):
        addrs = hub.listen_addrs
        async with Libp2pTransport.open(identity(4), bootstrap=addrs, config=config) as late:
            # the hub holds the newcomer's addresses (from its identify or announcement)
            listed = str(late.local_peer).encode()
            await eventually(lambda: listed in hub._build_peer_list())
            built = hub.stats["peer_list.built"]
            await trio.sleep(1.0)  # every list built so far is now too old to serve
            await first._ask_peer_list(hub.local_peer)
            assert hub.stats["peer_list.built"] > built
            assert listed in hub._peer_list.get(trio.current_time(), bytes)

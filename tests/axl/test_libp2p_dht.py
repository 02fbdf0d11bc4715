"""The lookup's rounds (``axl/_libp2p_dht.py``), with the FIND_NODE query replaced: which
queries a round waits for, and which it leaves running."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import trio

from axl import Identity, PeerId, TransportClosed
from axl import _libp2p_dht as dht_module
from axl._libp2p_dht import Dht


def ids(count: int) -> list[Any]:
    """libp2p peer ids, as the routing table holds them."""
    from libp2p.peer.id import ID

    return [ID(Identity.from_seed(bytes([n + 1]) * 32).peer_id.raw) for n in range(count)]


def axl(peer: Any) -> PeerId:
    return PeerId(peer.to_bytes())


def lookup_over(known: list[Any], own: Any) -> Dht:
    """A Dht whose routing table holds ``known`` and whose host holds no connection."""
    dht = Dht.__new__(Dht)
    table = SimpleNamespace(find_local_closest_peers=lambda key, count: list(known))
    dht.kad = SimpleNamespace(routing_table=table)
    store = SimpleNamespace(addrs=lambda peer: ["/ip4/127.0.0.1/tcp/1"])
    dht._host = SimpleNamespace(
        get_id=lambda: own, get_connected_peers=list, get_peerstore=lambda: store
    )
    return dht


async def test_a_round_that_names_the_target_leaves_its_other_queries_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One answer names the target: the lookup returns at once, and the two queries still in
    flight (dials to peers we are not connected to, say) finish instead of being cancelled
    mid-handshake."""
    own, target, *asked = ids(5)
    release = trio.Event()
    ended: dict[Any, str] = {}

    async def query(kad: Any, peer: Any, key: bytes, learned: list[Any]) -> None:
        try:
            if peer == target:
                return
            if not ended:  # the first query answers, naming the target
                ended[peer] = "answered"
                learned.append(target)
                return
            await release.wait()
            ended[peer] = "finished"
        except trio.Cancelled:
            ended[peer] = "cancelled"
            raise

    monkeypatch.setattr(dht_module, "query_closest", query)
    async with trio.open_nursery() as nursery:
        lookup = await lookup_over(asked, own).find(axl(target), timeout=5.0, nursery=nursery)
        assert lookup.found and lookup.rounds == 1 and lookup.queried == 3
        assert sorted(ended.values()) == ["answered"]  # the other two still run
        release.set()
    assert sorted(ended.values()) == ["answered", "finished", "finished"]


async def test_a_round_without_the_target_waits_for_every_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No answer names the target: the round ends when its last query does, and the next
    round asks the closer peers the answers named."""
    own, target, *peers = ids(8)
    first, later = peers[:3], peers[3:]
    asked: list[Any] = []

    async def query(kad: Any, peer: Any, key: bytes, learned: list[Any]) -> None:
        asked.append(peer)
        await trio.sleep(0.01 * len(asked))
        if peer in first:
            learned.extend(later)

    monkeypatch.setattr(dht_module, "query_closest", query)
    async with trio.open_nursery() as nursery:
        lookup = await lookup_over(first, own).find(axl(target), timeout=5.0, nursery=nursery)
    assert not lookup.found
    assert set(asked[:3]) == set(first) and set(asked[3:]) == set(later)
    assert lookup.rounds == 2 and lookup.queried == len(peers)


async def test_a_lookup_while_the_transport_closes_ends_in_transport_closed() -> None:
    """The queries run in the transport's nursery; once that no longer takes tasks (the
    transport is closing), a lookup ends in the transport's own error, not a RuntimeError."""
    own, target, *peers = ids(4)
    async with trio.open_nursery() as closed:
        pass
    with pytest.raises(TransportClosed):
        await lookup_over(peers, own).find(axl(target), timeout=5.0, nursery=closed)


async def test_a_peer_that_never_answers_cannot_hold_a_lookup_past_its_timeout(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    """A stalling peer: its query never ends and no answer names the target. The round no
    longer owns its queries, so the lookup's own timeout must still end it on time."""
    own, target, *peers = ids(5)

    async def query(kad: Any, peer: Any, key: bytes, learned: list[Any]) -> None:
        if peer == peers[0]:
            await trio.sleep_forever()  # the staller

    monkeypatch.setattr(dht_module, "query_closest", query)
    async with trio.open_nursery() as nursery:
        started = trio.current_time()
        lookup = await lookup_over(peers, own).find(axl(target), timeout=3.0, nursery=nursery)
        assert trio.current_time() - started == pytest.approx(3.0)
        assert not lookup.found and lookup.queried == 3
        nursery.cancel_scope.cancel()

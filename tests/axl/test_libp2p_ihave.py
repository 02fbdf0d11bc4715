"""The IHAVE check at once (``axl/_libp2p_ihave.py``) answers as py-libp2p's check per id:
the same unseen ids in the same order for any mix of binary ids, hex text, ASCII-hex bytes
and malformed ids, with the same cache entries refreshed. An IHAVE through the real router
draws an IWANT for exactly the unseen ids."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from axl._libp2p_ihave import unseen_ids

binary_ids = st.binary(min_size=1, max_size=40)
hex_text = st.binary(min_size=1, max_size=20).map(bytes.hex)
ascii_hex_bytes = hex_text.map(str.encode)
malformed = st.sampled_from(["abc", "zz", "0x12", "", "g" * 8, b"", b"abc"])
wire_ids = st.lists(st.one_of(binary_ids, hex_text, ascii_hex_bytes, malformed), max_size=30)


def seen_cache(keys: list[bytes]) -> Any:
    from libp2p.tools.timed_cache.last_seen_cache import LastSeenCache

    cache = LastSeenCache.__new__(LastSeenCache)  # no cleanup thread for a property test
    import threading

    cache.cache, cache.ttl, cache.lock = {}, 120, threading.Lock()
    for key in keys:
        cache.cache[key] = 1  # long expired: a hit must refresh it
    return cache


def py_libp2p_answer(seen: Any, ids: list[Any]) -> list[bytes]:
    from libp2p.pubsub.utils import safe_bytes_from_hex

    wanted = []
    for wire_id in ids:
        mid = safe_bytes_from_hex(wire_id)
        if mid is not None and not seen.has(mid):
            wanted.append(mid)
    return wanted


@settings(max_examples=300, deadline=None)
@given(ids=wire_ids, seen_share=st.data())
def test_the_batch_check_answers_as_py_libp2ps_check_per_id(
    ids: list[Any], seen_share: Any
) -> None:
    from libp2p.pubsub.utils import safe_bytes_from_hex

    decoded = [m for m in (safe_bytes_from_hex(i) for i in ids) if m is not None]
    known = seen_share.draw(
        st.lists(st.sampled_from(decoded), unique=True) if decoded else st.just([])
    )
    ours, theirs = seen_cache(known), seen_cache(known)
    assert unseen_ids(ours, ids) == py_libp2p_answer(theirs, ids)
    assert ours.cache.keys() == theirs.cache.keys()
    assert {k for k, v in ours.cache.items() if v > 1} == {
        k for k, v in theirs.cache.items() if v > 1
    }


def test_binary_ids_of_ours_are_taken_as_they_are() -> None:
    ids = [os.urandom(32) for _ in range(50)]
    seen = seen_cache(ids[:20])
    assert unseen_ids(seen, ids) == ids[20:]


async def test_an_ihave_through_the_router_asks_for_exactly_the_unseen_ids() -> None:
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    from axl import Identity, Libp2pConfig, Libp2pTransport

    # Asked at once (no grace: the deferred IWANT of choking is test_libp2p_choke.py's).
    config = Libp2pConfig(dial_timeout=3.0, peer_exchange=False, gossip_iwant_grace=0.0)
    async with Libp2pTransport.open(Identity.from_seed(b"\xe1" * 32), config=config) as node:
        pubsub: Any = node._pubsub
        router = pubsub.router
        seen, unseen = os.urandom(32), os.urandom(32)
        pubsub.seen_messages.add(seen)
        asked: list[list[bytes]] = []

        async def emit_iwant(ids: list[bytes], peer: Any) -> None:
            asked.append(list(ids))

        router.emit_iwant = emit_iwant
        sender = ID(Identity.from_seed(b"\xe2" * 32).peer_id.raw)
        ihave = rpc_pb2.ControlIHave(topicID="t", messageIDs=[seen, unseen, unseen.hex().encode()])
        await router.handle_ihave(ihave, sender)
        assert asked == [[unseen, unseen]]  # py-libp2p asks per id listed, as here
        await router.handle_ihave(rpc_pb2.ControlIHave(topicID="t", messageIDs=[seen]), sender)
        assert len(asked) == 1


async def test_ihave_goes_to_gossip_lazy_peers_whatever_the_swarms_size() -> None:
    """By default a heartbeat's IHAVE goes to ``gossip_lazy`` (3) non-mesh peers of a topic
    however many there are: at 40 nodes libp2p's quarter of them (9) made IHAVE a tenth of a
    node's work. ``gossip_factor`` brings the quarter back."""
    from dataclasses import replace

    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    from axl import Identity, Libp2pConfig, Libp2pTransport

    base = Libp2pConfig(dial_timeout=3.0, peer_exchange=False)
    for config, targets in ((base, 3), (replace(base, gossip_factor=0.25), 9)):
        seed = bytes([0xE3 + targets]) * 32
        async with Libp2pTransport.open(Identity.from_seed(seed), config=config) as node:
            pubsub: Any = node._pubsub
            router = pubsub.router
            peers = [ID(Identity.from_seed(bytes([i]) * 32).peer_id.raw) for i in range(1, 40)]
            pubsub.peer_topics["t"] = set(peers)
            for peer in peers:
                router.peer_protocol[peer] = "/meshsub/1.1.0"
            router.mesh["t"] = set(peers[:3])
            router.mcache.put(rpc_pb2.Message(from_id=b"o", seqno=b"1", data=b"m", topicIDs=["t"]))
            gossip = router.gossip_heartbeat()
            assert len(gossip) == targets  # int(36 * 0.25) = 9 with the quarter
            assert not set(gossip) & set(peers[:3])

"""The forwarding router picks exactly the peers py-libp2p's GossipSub picks
(``AxlGossipSub._get_peers_to_send`` skips two walks that decide nothing in an AXL swarm:
the floodsub peers when none speaks floodsub, and a score gate whose thresholds are -inf)."""

from __future__ import annotations

import copy
import math
import random
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from axl import Identity
from axl._libp2p_gossip import gossipsub_class

PEERS = 8
TOPICS = ("a", "b", "c")


def _ids() -> list[Any]:
    from libp2p.peer.id import ID

    return [ID(Identity.from_seed(bytes([0xA0 + i]) * 32).peer_id.raw) for i in range(PEERS)]


IDS = _ids()
peer_sets = st.sets(st.integers(0, PEERS - 1))
state = st.fixed_dictionaries(
    {
        "peer_topics": st.dictionaries(st.sampled_from(TOPICS), peer_sets),
        "mesh": st.dictionaries(st.sampled_from(TOPICS), peer_sets),
        "fanout": st.dictionaries(st.sampled_from(TOPICS), peer_sets),
        "floodsub": peer_sets,
        "direct": peer_sets,
        "dont_send": st.dictionaries(
            st.integers(0, PEERS - 1), st.sets(st.sampled_from([b"m", b"n"]))
        ),
        "topics": st.lists(st.sampled_from(TOPICS), max_size=3),
        "forwarder": st.integers(0, PEERS - 1),
        "origin": st.integers(0, PEERS - 1),
        "msg_id": st.sampled_from([None, b"m", b"n"]),
        "gate": st.sampled_from(["open", "publish_only", "closed"]),
    }
)


def _router(s: dict[str, Any]) -> Any:
    from libp2p.custom_types import TProtocol
    from libp2p.pubsub.floodsub import PROTOCOL_ID as FLOODSUB

    router = gossipsub_class()([TProtocol("/meshsub/1.1.0")], degree=3, degree_low=2, degree_high=5)
    router.pubsub = SimpleNamespace(
        peer_topics={t: {IDS[i] for i in peers} for t, peers in s["peer_topics"].items()}
    )
    router.mesh = {t: {IDS[i] for i in peers} for t, peers in s["mesh"].items()}
    router.fanout = {t: {IDS[i] for i in peers} for t, peers in s["fanout"].items()}
    router.peer_protocol = {
        IDS[i]: FLOODSUB if i in s["floodsub"] else "/meshsub/1.1.0" for i in range(PEERS)
    }
    router.direct_peers = {IDS[i] for i in s["direct"]}
    router.dont_send_message_ids = {IDS[i]: ids for i, ids in s["dont_send"].items()}
    if s["gate"] != "open":  # a finite threshold: the gate must really be consulted
        router.scorer.params.gossip_threshold = 0.0 if s["gate"] == "closed" else -math.inf
        router.scorer.params.graylist_threshold = -1.0
        router.scorer.params.p5_behavior_penalty_threshold = 0.0
        router.scorer.params.p5_behavior_penalty_weight = 1.0
        for i in range(0, PEERS, 2):  # every other peer scores below the thresholds
            router.scorer.behavior_penalty[IDS[i]] = 50.0
    return router


@settings(max_examples=300, deadline=None)
@given(state)
def test_the_same_peers_as_py_libp2p(s: dict[str, Any]) -> None:
    from libp2p.pubsub.gossipsub import GossipSub

    ours = _router(s)
    theirs = copy.copy(ours)  # the fanout branch updates state: each side gets its own
    theirs.fanout = copy.deepcopy(ours.fanout)
    args = (s["topics"], IDS[s["forwarder"]], IDS[s["origin"]], s["msg_id"])
    random.seed(7)  # the fanout branch draws peers at random: the same draws for both
    picked = set(ours._get_peers_to_send(*args))
    random.seed(7)
    expected = set(GossipSub._get_peers_to_send(theirs, *args))
    assert picked == expected
    assert ours.fanout == theirs.fanout

"""Choking's bookkeeping and wire codec (``axl/_libp2p_choke.py``), sans-IO: the latest first
sender is never left choked, the state stays bounded, a peer's orders bind only what we send
to it, a missed key floods longer each time; orders round-trip through RPCs and coalescing,
merge without changing their meaning, and malformed or oversized fields are typed errors.
The router and real hosts: ``test_libp2p_gossip_choke.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axl import Identity, Libp2pConfig
from axl._libp2p_choke import (
    CHOKE_FIELD,
    MAX_ENTRIES,
    MAX_ORIGINS,
    MAX_RPC_ORIGINS,
    ChokeBook,
    ChokeDecodeError,
    ChokeOrder,
    control_bytes,
    merge_orders,
    read_orders,
)
from axl._libp2p_rpc import coalesce

CONFIG = Libp2pConfig(gossip_heartbeat=0.5, dial_timeout=3.0, peer_exchange=False)
TOPIC = "ticks"


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0x60 + n]) * 32)


# -- the bookkeeping ----------------------------------------------------------------------------


def test_a_duplicate_chokes_its_sender_once_until_the_resend_time() -> None:
    book: ChokeBook[str] = ChokeBook(resend_after=2.0)
    key = ("t", b"origin")
    assert book.first_copy("a", key, repaired=False) == ([], False)
    assert book.duplicate("b", key, now=10.0)  # b is not needed: choke it
    assert not book.duplicate("b", key, now=11.0)  # sent a second ago: still in flight
    assert book.duplicate("b", key, now=12.5)  # still sending 2 s later: it forgot, again
    assert book.duplicate("c", key, now=12.5)
    assert book.parents == {key: "a"}
    assert set(book.choking[key]) == {"b", "c"}


def test_a_first_copy_from_a_choked_peer_unchokes_it() -> None:
    """A peer we choked that still delivers first (it outran the tree while the CHOKE was in
    flight) becomes the parent and is unchoked: the latest first sender is never choked."""
    book: ChokeBook[str] = ChokeBook()
    key = ("t", b"o")
    book.first_copy("a", key, repaired=False)
    book.duplicate("b", key, now=0.0)
    assert book.first_copy("b", key, repaired=False) == (["b"], False)
    assert book.parents[key] == "b"
    assert "b" not in book.choking[key]


def test_an_iwant_answer_means_the_tree_missed_and_unchokes_everybody() -> None:
    book: ChokeBook[str] = ChokeBook()
    key, other = ("t", b"o"), ("t", b"p")
    book.first_copy("a", key, repaired=False)
    book.first_copy("a", other, repaired=False)
    for peer in ("b", "c"):
        book.duplicate(peer, key, now=0.0)
        book.duplicate(peer, other, now=0.0)
    unchoke, everyone = book.first_copy("d", key, repaired=True, now=100.0)
    assert everyone and sorted(unchoke) == ["b", "c"]
    assert key not in book.parents and key not in book.choking
    assert set(book.choking[other]) == {"b", "c"}  # another origin's tree is untouched
    # The key floods for a while: a parent that withholds messages is not trusted again at
    # once (it would cost one late message per message, not one per period).
    period = book.flood_after_repair
    book.first_copy("a", key, repaired=False)
    assert not book.duplicate("b", key, now=100.0 + period - 0.1)
    assert book.duplicate("b", key, now=100.0 + period)


def test_a_key_the_tree_keeps_missing_floods_longer_each_time() -> None:
    """A parent that withholds messages again and again: each miss within twice the last
    period doubles the flood, up to the cap; a key missed once long ago starts over."""
    book: ChokeBook[str] = ChokeBook(flood_after_repair=2.0, flood_after_repair_max=16.0)
    key = ("t", b"o")
    now, periods = 0.0, []
    for _ in range(6):
        book.first_copy("a", key, repaired=False)  # the withholding parent is fastest again
        book.first_copy("d", key, repaired=True, now=now)  # the next message came by IWANT
        until, period = book.flooding[key]
        periods.append(period)
        assert not book.duplicate("b", key, until - 0.1) and book.duplicate("b", key, until)
        now = until + 0.5  # it withholds the first message after the flood
    assert periods == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0]
    book.first_copy("d", key, repaired=True, now=now + 1000.0)
    assert book.flooding[key][1] == 2.0


def test_a_lost_parent_unchokes_the_keys_it_carried_and_no_others() -> None:
    book: ChokeBook[str] = ChokeBook()
    via_a = [("t", b"1"), ("t", b"2")]
    via_b = ("t", b"3")
    other_topic = ("u", b"1")
    for key in via_a:
        book.first_copy("a", key, repaired=False)
        book.duplicate("c", key, now=0.0)
    book.first_copy("b", via_b, repaired=False)
    book.duplicate("a", via_b, now=0.0)
    book.first_copy("a", other_topic, repaired=False)
    lost = book.parent_lost("a", "t")
    assert lost == {via_a[0]: ["c"], via_a[1]: ["c"]}
    assert book.parents == {via_b: "b", other_topic: "a"}
    assert book.choking[via_b] == {"a": 0.0}


def test_a_peers_orders_bind_only_what_we_send_to_it_and_are_capped() -> None:
    book: ChokeBook[str] = ChokeBook(max_keys_per_peer=3)
    assert book.apply("liar", "t", [b"1", b"2", b"3", b"4", b"5"], []) == 2
    assert book.skips("liar", ("t", b"1")) and not book.skips("liar", ("t", b"5"))
    assert not book.skips("honest", ("t", b"1"))  # nobody else is affected
    assert book.apply("liar", "t", [b"4"], [b"1"]) == 0  # an unchoke frees a slot first
    assert book.skips("liar", ("t", b"4")) and not book.skips("liar", ("t", b"1"))
    book.forget("liar")
    assert not book.choked_by


events = st.lists(
    st.tuples(
        st.sampled_from(["first", "repaired", "duplicate", "lost", "forget", "apply"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from([("t", b"1"), ("t", b"2"), ("t", b"3"), ("u", b"1"), ("u", b"9")]),
        st.floats(min_value=0, max_value=100),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_the_bookkeeping_never_chokes_the_latest_first_sender_and_stays_bounded(
    script: list[tuple[str, str, tuple[str, bytes], float]],
) -> None:
    book: ChokeBook[str] = ChokeBook(max_keys=3, max_keys_per_peer=2)
    for event, peer, key, now in script:
        if event == "first":
            book.first_copy(peer, key, repaired=False)
            assert book.parents[key] == peer
            assert peer not in book.choking.get(key, {})
        elif event == "repaired":
            _, everyone = book.first_copy(peer, key, repaired=True, now=now)
            assert everyone and key not in book.choking and key not in book.parents
            assert not book.duplicate(peer, key, now)  # floods for a while
        elif event == "duplicate":
            book.duplicate(peer, key, now)
        elif event == "lost":
            for lost_key in book.parent_lost(peer, key[0]):
                assert lost_key[0] == key[0] and lost_key not in book.choking
            assert all(p != peer or k[0] != key[0] for k, p in book.parents.items())
        elif event == "forget":
            book.forget(peer)
            assert peer not in book.choked_by
            assert all(peer not in choked for choked in book.choking.values())
        else:
            book.apply(peer, key[0], [key[1], b"x"], [])
        assert len(book.parents) <= 3 and len(book.choking) <= 3 and len(book.flooding) <= 3
        assert all(len(keys) <= 2 for keys in book.choked_by.values())


# -- the wire -----------------------------------------------------------------------------------


def _rpc(raw: bytes) -> Any:
    from libp2p.pubsub.pb import rpc_pb2

    rpc = rpc_pb2.RPC()
    rpc.MergeFromString(raw)
    return rpc


def test_orders_round_trip_through_an_rpc_and_survive_coalescing() -> None:
    from libp2p.pubsub.pb import rpc_pb2

    orders = [
        ChokeOrder("t", choke=(b"o1", b"o2")),
        ChokeOrder("u", unchoke=(b"o3",)),
        ChokeOrder(hello=True),
    ]
    rpc = _rpc(control_bytes(orders))
    wire = rpc_pb2.RPC()
    wire.ParseFromString(rpc.SerializeToString())
    assert list(read_orders(wire.control)) == orders
    forward = rpc_pb2.RPC(publish=[rpc_pb2.Message(data=b"m", topicIDs=["t"])])
    ihave = rpc_pb2.RPC(control=rpc_pb2.ControlMessage(ihave=[rpc_pb2.ControlIHave(topicID="t")]))
    (merged,) = coalesce([forward, rpc, ihave], 1 << 20)
    again = rpc_pb2.RPC()
    again.ParseFromString(merged.SerializeToString())
    assert list(read_orders(again.control)) == orders
    assert len(again.publish) == 1 and len(again.control.ihave) == 1
    assert list(read_orders(rpc_pb2.ControlMessage())) == []  # a stock control message


def test_merged_orders_say_the_same_in_one_entry_per_topic() -> None:
    """Orders that waited and new ones go out merged: per topic each origin's latest order,
    UNCHOKEs first, at most MAX_ORIGINS origins an entry, one hello. The receiver applies an
    entry's UNCHOKEs before its CHOKEs, so the merged orders leave it where the sequence
    would have."""
    orders = [
        ChokeOrder("t", choke=(b"a", b"b")),
        ChokeOrder("t", unchoke=(b"a",)),
        ChokeOrder(hello=True),
        ChokeOrder("u", unchoke=(b"c",)),
        ChokeOrder("t", choke=(b"c",), unchoke=(b"b",)),
        ChokeOrder("u", choke=(b"c",)),
    ]
    assert merge_orders(orders) == [
        ChokeOrder(hello=True),
        ChokeOrder("t", unchoke=(b"a", b"b")),
        ChokeOrder("t", choke=(b"c",)),
        ChokeOrder("u", choke=(b"c",)),
    ]
    one, sequence = ChokeBook[str](), ChokeBook[str]()
    for order in orders:
        sequence.apply("p", order.topic, order.choke, order.unchoke)
    for order in merge_orders(orders):
        one.apply("p", order.topic, order.choke, order.unchoke)
    assert one.choked_by == sequence.choked_by
    many = [bytes([i % 256, i // 256]) for i in range(MAX_ORIGINS + 5)]
    assert [len(o.choke) for o in merge_orders([ChokeOrder("t", choke=tuple(many))])] == [
        MAX_ORIGINS,
        5,
    ]


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    from libp2p.utils.varint import encode_uvarint

    head = encode_uvarint(number << 3 | wire_type)
    if wire_type == 2:
        return head + encode_uvarint(len(payload)) + payload
    return head + payload


@pytest.mark.parametrize(
    "inner",
    [
        pytest.param(_field(CHOKE_FIELD, 2, b"\xff\xff\xff"), id="malformed-entry"),
        pytest.param(_field(CHOKE_FIELD, 0, b"\x01"), id="not-length-delimited"),
        pytest.param(
            b"".join(_field(CHOKE_FIELD, 2, b"") for _ in range(MAX_ENTRIES + 1)),
            id="too-many-entries",
        ),
        pytest.param(
            _field(CHOKE_FIELD, 2, b"".join(_field(2, 2, b"o") for _ in range(MAX_ORIGINS + 1))),
            id="too-many-origins",
        ),
        pytest.param(
            b"".join(
                _field(CHOKE_FIELD, 2, b"".join(_field(2, 2, b"o") for _ in range(MAX_ORIGINS)))
                for _ in range(MAX_RPC_ORIGINS // MAX_ORIGINS + 1)
            ),
            id="too-many-origins-in-the-rpc",
        ),
        pytest.param(_field(CHOKE_FIELD, 2, _field(2, 2, b"o" * 65)), id="oversized-origin"),
        pytest.param(_field(CHOKE_FIELD, 2, _field(1, 2, b"\xc3\x28")), id="topic-not-utf8"),
    ],
)
def test_a_malformed_or_oversized_choke_field_is_a_typed_error(inner: bytes) -> None:
    rpc = _rpc(_field(3, 2, inner))
    with pytest.raises(ChokeDecodeError):
        list(read_orders(rpc.control))

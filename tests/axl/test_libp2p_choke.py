"""Choking (``axl/_libp2p_choke.py`` and the router in ``axl/_libp2p_gossip.py``): a mesh peer
whose copies arrive second is asked to stop pushing them, so a message travels a tree of
first arrivals.

The sans-IO bookkeeping is tested on its own (the latest first sender is never left choked,
state stays bounded, a peer's orders bind only what we send to it); the wire codec against
malformed and oversized fields; real hosts for what matters end to end: copies fall and
delivery stays complete, a parent that leaves does not cut its subtree off, a peer that
chokes everything starves only itself, a malformed choke costs its sender nothing but the
order, and a peer that does not speak choking is never choked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from axl import Identity, Libp2pConfig, Libp2pTransport
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

from .clusters import eventually

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
    from axl._libp2p_choke import _varint

    head = _varint(number << 3 | wire_type)
    if wire_type == 2:
        return head + _varint(len(payload)) + payload
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


# -- real hosts ---------------------------------------------------------------------------------


@asynccontextmanager
async def swarm(configs: list[Libp2pConfig]) -> AsyncIterator[list[Libp2pTransport]]:
    """Fully connected transports, all on :data:`TOPIC`, each mesh at D_low or more."""
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(Libp2pTransport.open(identity(i), config=config))
            for i, config in enumerate(configs)
        ]
        async with trio.open_nursery() as nursery:
            for i, node in enumerate(nodes):
                for other in nodes[i + 1 :]:
                    nursery.start_soon(node.connect, other.listen_addrs[0])
        for node in nodes:
            await node.subscribe(TOPIC)
        await eventually(
            lambda: all(
                len(n._pubsub.router.mesh.get(TOPIC, ())) >= 2  # type: ignore[union-attr]
                for n in nodes
            ),
            timeout=20,
        )
        yield nodes


async def publish_round(
    nodes: list[Libp2pTransport], tag: bytes, publishers: list[Libp2pTransport] | None = None
) -> None:
    """Every publisher publishes one frame; every other node of ``nodes`` must receive each."""
    publishers = nodes if publishers is None else publishers
    sent = {b"%s %d" % (tag, i): node for i, node in enumerate(publishers)}
    for frame, node in sent.items():
        await node.publish(TOPIC, frame)

    async def drain(node: Libp2pTransport) -> None:
        want = {frame for frame, sender in sent.items() if sender is not node}
        with trio.fail_after(15):
            while want:
                got = await node.receive()
                want.discard(got.frame)

    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(drain, node)


def copies(nodes: list[Libp2pTransport]) -> int:
    return sum(node.stats["gossip.messages_received"] for node in nodes)


async def test_choking_cuts_the_copies_and_every_message_still_arrives() -> None:
    """Six fully connected hosts: once the first messages have choked the slower links, each
    further message reaches every host about once; with choking off, about D times."""
    measured = {}
    for choke in (True, False):
        async with swarm([replace(CONFIG, gossip_choke=choke)] * 6) as nodes:
            for n in range(3):  # the trees form
                await publish_round(nodes, b"warm %d" % n)
            before = copies(nodes)
            for n in range(5):
                await publish_round(nodes, b"tick %d" % n)
            measured[choke] = (copies(nodes) - before) / (5 * 6 * 5)
            chokes = sum(node.stats["gossip.chokes_sent"] for node in nodes)
            assert (chokes > 0) == choke
    assert measured[True] < 1.3 < 1.6 < measured[False]


async def test_a_parent_that_leaves_does_not_cut_its_subtree_off() -> None:
    """The host that was the most nodes' parent closes; the others go on receiving every
    message of every remaining publisher (its children unchoke the links they had choked)."""
    async with swarm([CONFIG] * 6) as nodes:
        for n in range(3):
            await publish_round(nodes, b"warm %d" % n)
        parents: dict[Any, int] = {}
        for node in nodes:
            router: Any = node._pubsub.router  # type: ignore[union-attr]
            for parent in router.chokes.parents.values():
                parents[parent] = parents.get(parent, 0) + 1
        leaver = max(nodes, key=lambda node: parents.get(node._host.get_id(), 0))  # type: ignore[union-attr]
        assert parents.get(leaver._host.get_id(), 0) > 0  # type: ignore[union-attr]
        rest = [node for node in nodes if node is not leaver]
        await leaver.aclose()
        for n in range(3):
            await publish_round(rest, b"after %d" % n)
        assert sum(node.stats["gossip.unchokes_sent"] for node in rest) > 0


async def test_a_peer_that_chokes_everybody_starves_only_itself() -> None:
    """A liar sends every peer CHOKE for every origin: nobody pushes to it any more, and
    everybody else still receives every message (what it refuses binds only its own links)."""
    async with swarm([CONFIG] * 6) as nodes:
        liar, honest = nodes[0], nodes[1:]
        liar_router: Any = liar._pubsub.router  # type: ignore[union-attr]
        origins = tuple(node._host.get_id().to_bytes() for node in nodes)  # type: ignore[union-attr]
        for node in honest:
            liar_router._send_orders(node._host.get_id(), [ChokeOrder(TOPIC, choke=origins)])  # type: ignore[union-attr]
        await eventually(
            lambda: all(
                node._pubsub.router.chokes.choked_by.get(liar._host.get_id())  # type: ignore[union-attr]
                for node in honest
            )
        )
        for n in range(3):
            await publish_round(honest, b"tick %d" % n)
        assert sum(node.stats["gossip.choked_skips"] for node in honest) > 0


async def test_a_malformed_choke_field_is_counted_and_the_link_keeps_working() -> None:
    async with swarm([CONFIG] * 3) as nodes:
        sender_router: Any = nodes[0]._pubsub.router  # type: ignore[union-attr]
        victim = nodes[1]
        bad = _rpc(_field(3, 2, _field(CHOKE_FIELD, 2, b"\xff\xff\xff")))
        sender_router.send_rpc(victim._host.get_id(), bad)  # type: ignore[union-attr]
        await eventually(lambda: victim.stats["gossip.refused_choke"] == 1)
        await publish_round(nodes, b"after")


async def test_a_peer_that_does_not_speak_choking_is_never_choked() -> None:
    """A host with choking off sends no hello for it: the others never send it CHOKE, and it
    keeps receiving every message, duplicates and all."""
    configs = [CONFIG] * 4 + [replace(CONFIG, gossip_choke=False)]
    async with swarm(configs) as nodes:
        stock = nodes[-1]
        stock_id = stock._host.get_id()  # type: ignore[union-attr]
        for n in range(4):
            await publish_round(nodes, b"tick %d" % n)
        for node in nodes[:-1]:
            router: Any = node._pubsub.router  # type: ignore[union-attr]
            assert stock_id not in router.choke_speakers
            assert all(stock_id not in choked for choked in router.chokes.choking.values())
        assert sum(node.stats["gossip.chokes_sent"] for node in nodes[:-1]) > 0


async def test_an_ihave_id_gets_the_grace_to_arrive_down_the_tree_before_it_is_asked_for() -> None:
    """With choking a message travels one path, so an IHAVE often names a message still on
    its way: it is asked for (IWANT) only if it has not arrived after ``gossip_iwant_grace``,
    and only then does its arrival count as a miss of the tree (an unchoke of its origin)."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    config = replace(CONFIG, gossip_iwant_grace=0.2)
    async with Libp2pTransport.open(identity(40), config=config) as node:
        pubsub: Any = node._pubsub
        router = pubsub.router
        asked: list[list[bytes]] = []

        async def emit_iwant(ids: list[bytes], peer: Any) -> None:
            asked.append(list(ids))

        router.emit_iwant = emit_iwant
        sender = ID(identity(41).peer_id.raw)
        pubsub.peers[sender] = object()  # connected, as far as the router asks
        arrives, missing = b"\x80" * 32, b"\x81" * 32
        ihave = rpc_pb2.ControlIHave(topicID=TOPIC, messageIDs=[arrives, missing])
        await router.handle_ihave(ihave, sender)
        assert asked == []  # deferred, not asked
        pubsub.seen_messages.add(arrives)  # came down the tree meanwhile
        await trio.sleep(0.3)
        await router.handle_ihave(rpc_pb2.ControlIHave(topicID=TOPIC), sender)
        assert asked == [[missing]]
        assert missing in router.iwanted and arrives not in router.iwanted
        del pubsub.peers[sender]
        await router.handle_ihave(ihave, sender)  # the sender leaves before the grace ends
        await trio.sleep(0.3)
        await router._iwant_due()
        assert asked == [[missing]]


async def test_an_unchoke_is_answered_with_the_ids_of_that_origins_recent_messages() -> None:
    """A peer that unchokes an origin lost its parent, and may have missed what we did not
    push to it meanwhile: it is sent an IHAVE of that origin's messages in our gossip window
    (and asks for what it lacks). A flood of UNCHOKEs gets at most one answer a second."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    from axl._libp2p_announce import memo_message_id

    async with Libp2pTransport.open(identity(42), config=CONFIG) as node:
        router: Any = node._pubsub.router  # type: ignore[union-attr]
        sent: list[tuple[Any, Any]] = []
        router.send_rpc = lambda peer, rpc, priority=False: sent.append((peer, rpc))
        a, b = b"origin-a", b"origin-b"
        msgs = [
            rpc_pb2.Message(from_id=origin, seqno=bytes([i]), data=b"x", topicIDs=[TOPIC])
            for i, origin in enumerate([a, b, a])
        ]
        for msg in msgs:
            router.mcache.put(msg)
        peer = ID(identity(43).peer_id.raw)
        unchoke = _rpc(control_bytes([ChokeOrder(TOPIC, unchoke=(a,))]))
        router.take_orders(unchoke.control, peer)
        ((to, rpc),) = sent
        assert to == peer
        (ihave,) = rpc.control.ihave
        assert ihave.topicID == TOPIC
        assert list(ihave.messageIDs) == [memo_message_id(msgs[0]), memo_message_id(msgs[2])]
        router.take_orders(unchoke.control, peer)  # again at once: not answered
        assert len(sent) == 1


class RecordingQueue:
    """A peer's outbound RPC queue that records what is pushed (``accept``: whether it has
    room)."""

    def __init__(self, peer: Any, sent: list[tuple[Any, Any]], accept: bool = True) -> None:
        self.peer, self.sent, self.accept = peer, sent, accept
        self.max_message_size = 1 << 20

    def push(self, rpc: Any, priority: bool = False) -> bool:
        if self.accept:
            self.sent.append((self.peer, rpc))
        return self.accept

    def __len__(self) -> int:
        return 0


async def test_choke_orders_that_meet_a_full_queue_wait_for_the_next_heartbeat() -> None:
    """A slow peer's full queue does not lose an UNCHOKE (it would go on skipping us while we
    count on it as a parent): the orders wait, UNCHOKEs first, and go out when there is room."""
    from libp2p.peer.id import ID

    async with Libp2pTransport.open(identity(49), config=CONFIG) as node:
        router: Any = node._pubsub.router  # type: ignore[union-attr]
        pubsub: Any = node._pubsub
        sent: list[tuple[Any, Any]] = []
        peer = ID(identity(50).peer_id.raw)
        queue = pubsub.peer_queues[peer] = RecordingQueue(peer, sent, accept=False)
        router._send_orders(peer, [ChokeOrder(TOPIC, choke=(b"a",))])
        router._send_orders(peer, [ChokeOrder(TOPIC, unchoke=(b"b",))])
        assert sent == [] and [o.unchoke for o in router.pending_orders[peer]] == [(b"b",), ()]
        router._flush_orders()  # still full
        assert sent == [] and len(router.pending_orders[peer]) == 2
        queue.accept = True
        await router._maintain_mesh_quality(TOPIC)  # the heartbeat's hook
        ((to, rpc),) = sent
        assert to == peer and not router.pending_orders
        orders = list(read_orders(rpc.control))
        assert [(o.choke, o.unchoke) for o in orders] == [((), (b"b",)), ((b"a",), ())]


async def test_the_router_unchokes_on_a_lost_parent_and_on_a_message_the_tree_missed() -> None:
    """Router wiring, one host: a parent that disconnects or prunes us, and a first copy that
    came as the answer to our IWANT, each send UNCHOKE for the key to every mesh peer that
    speaks choking (and to the peers we had choked), and the missed key floods a while."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    async with Libp2pTransport.open(identity(44), config=CONFIG) as node:
        router: Any = node._pubsub.router  # type: ignore[union-attr]
        pubsub: Any = node._pubsub
        sent: list[tuple[Any, Any]] = []
        router.send_rpc = lambda peer, rpc, priority=False: sent.append((peer, rpc))
        parent, choked, other, stock = (ID(identity(n).peer_id.raw) for n in (45, 46, 47, 48))
        for peer in (parent, choked, other, stock):
            pubsub.peers[peer] = object()
            pubsub.peer_queues[peer] = RecordingQueue(peer, sent)
        router.mesh[TOPIC] = {parent, choked, other, stock}
        router.choke_speakers |= {parent, choked, other}  # stock never said it speaks it

        def unchoked() -> dict[Any, set[bytes]]:
            out: dict[Any, set[bytes]] = {}
            for peer, rpc in sent:
                for order in read_orders(rpc.control):
                    out.setdefault(peer, set()).update(order.unchoke)
            sent.clear()
            return out

        for lose in ("disconnect", "prune"):
            key = (TOPIC, b"origin-" + lose.encode())
            router.chokes.first_copy(parent, key, repaired=False)
            router.chokes.duplicate(choked, key, now=0.0)
            if lose == "disconnect":
                router.remove_peer(parent)
            else:
                await router.handle_prune(rpc_pb2.ControlPrune(topicID=TOPIC), parent)
            assert unchoked() == {choked: {key[1]}, other: {key[1]}}
            assert key not in router.chokes.parents
            router.mesh[TOPIC].add(parent)  # it comes back (and says hello again)
            router.choke_speakers.add(parent)
            pubsub.peers[parent] = object()
            pubsub.peer_queues[parent] = RecordingQueue(parent, sent)

        missed = rpc_pb2.Message(from_id=b"origin-x", seqno=b"1", data=b"m", topicIDs=[TOPIC])
        mid = b"\x99" * 32
        router.chokes.first_copy(parent, (TOPIC, b"origin-x"), repaired=False)
        router.iwanted[mid] = None  # we asked for it after an IHAVE
        router.forward(other, missed, mid)
        assert {p: o for p, o in unchoked().items() if o} == {
            p: {b"origin-x"} for p in (parent, choked, other)
        }
        assert (TOPIC, b"origin-x") in router.chokes.flooding


async def test_ihave_gossip_reaches_peers_in_graft_backoff() -> None:
    """A GRAFT backoff is about grafting: a peer that refused our GRAFT still gets our IHAVE
    (py-libp2p left it out for the whole 60 s backoff, so a bootstrap node that refused many
    GRAFTs heard almost no gossip, and a choked tree that starved it was not repaired)."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    async with Libp2pTransport.open(identity(51), config=replace(CONFIG, gossip_lazy=10)) as node:
        router: Any = node._pubsub.router  # type: ignore[union-attr]
        pubsub: Any = node._pubsub
        mesh_peer, refused, other = (ID(identity(n).peer_id.raw) for n in (52, 53, 54))
        pubsub.peer_topics[TOPIC] = {mesh_peer, refused, other}
        for peer in (mesh_peer, refused, other):
            router.peer_protocol[peer] = "/meshsub/1.1.0"
        router.mesh[TOPIC] = {mesh_peer}
        router.mcache.put(rpc_pb2.Message(from_id=b"o", seqno=b"1", data=b"m", topicIDs=[TOPIC]))
        router._add_back_off(refused, TOPIC, False)  # what a refused GRAFT leaves behind
        assert set(router.gossip_heartbeat()) == {refused, other}

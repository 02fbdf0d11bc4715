"""Choking in the router (``axl/_libp2p_gossip_choke.py``) and between real hosts: copies fall
and delivery stays complete, a parent that leaves does not cut its subtree off, a peer that
chokes everything starves only itself, a malformed choke costs its sender nothing but the
order, a peer that does not speak choking is never choked; IHAVE ids get a grace before they
are asked for, an UNCHOKE is answered with recent ids, orders wait out a full queue, and
IHAVE gossip reaches peers in GRAFT backoff. (The bookkeeping and the wire codec:
``test_libp2p_choke.py``.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_choke import CHOKE_FIELD, ChokeOrder, control_bytes, read_orders

from .clusters import eventually
from .test_libp2p_choke import _field, _rpc

CONFIG = Libp2pConfig(gossip_heartbeat=0.5, dial_timeout=3.0, peer_exchange=False)
TOPIC = "ticks"


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0x60 + n]) * 32)


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

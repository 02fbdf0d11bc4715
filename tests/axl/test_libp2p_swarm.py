"""Swarm behaviour of the libp2p transport, in one process on loopback: no redelivery of old
topic messages to peers that subscribe late or come back, fast reconnection to a bootstrap
node restarted on its address, and the cached peer-record checks staying sound.

Everything waits on conditions with deadlines; nothing asserts on timing.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from axl import (
    Context,
    Identity,
    Libp2pConfig,
    Libp2pTransport,
    Message,
    PeerUnreachable,
    open_bus,
)
from axl._libp2p_announce import (
    Announcement,
    message_id,
    read_announcement,
    sign_announcement,
)
from axl._libp2p_gossip import gossipsub_class

from .clusters import eventually

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0x90 + n]) * 32)


async def test_a_late_subscriber_is_sent_no_message_published_before_it_subscribed() -> None:
    """py-libp2p queued up to 100 messages per connected-but-unsubscribed peer (for 30 s) and
    replayed its cache window to every new subscriber: a restarted agent got hundreds of old
    messages. Connected first, subscribed later, the peer must get only what came after."""
    async with (
        Libp2pTransport.open(identity(0), config=CONFIG) as publisher,
        Libp2pTransport.open(identity(1), config=CONFIG) as early,
        Libp2pTransport.open(identity(2), config=CONFIG) as late,
    ):
        await early.connect(publisher.listen_addrs[0])
        await late.connect(publisher.listen_addrs[0])
        await early.subscribe("ticks")
        await eventually(lambda: early.local_peer in publisher.topic_peers("ticks"))
        await eventually(lambda: late.local_peer in publisher.connected_peers())
        pubsub = publisher._pubsub
        assert pubsub is not None
        await eventually(lambda: len(pubsub.peers) == 2)  # both speak pubsub

        for n in range(20):
            await publisher.publish("ticks", b"old %d" % n)
        got_early = [(await early.receive()).frame for _ in range(20)]
        assert got_early == [b"old %d" % n for n in range(20)]

        await late.subscribe("ticks")
        await eventually(lambda: late.local_peer in publisher.topic_peers("ticks"))
        await trio.sleep(0.5)  # give a replay, if any, the time to arrive first
        await publisher.publish("ticks", b"new")
        with trio.fail_after(10):
            first = await late.receive()
        assert first.frame == b"new"


_BOOT_NODE = """
import sys, trio
from axl import Identity, Libp2pConfig, Libp2pTransport

async def main() -> None:
    identity = Identity.from_seed(bytes([0x95]) * 32)
    config = Libp2pConfig(gossip_heartbeat=0.2, peer_exchange=False)
    async with Libp2pTransport.open(identity, listen=[sys.argv[1]], config=config):
        print("ready", flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


ROOT = Path(__file__).resolve().parents[2]


async def start_boot_node(listen: str) -> trio.Process:
    root = ROOT
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", _BOOT_NODE, listen],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert process.stdout is not None
    with trio.fail_after(60):
        assert b"ready" in await process.stdout.receive_some(100)
    return process


async def test_a_bootstrap_node_restarted_on_its_address_is_reached_again_quickly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bootstrap node is killed (SIGKILL) and restarted on the same address. py-libp2p
    refuses to dial a peer for 60 s after all its addresses failed once; the transport's own
    backoff (here at most 2 s) must decide instead, and each expected failure logs one line,
    not a traceback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    listen = f"/ip4/127.0.0.1/tcp/{port}"
    boot = Identity.from_seed(bytes([0x95]) * 32)
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=2.0, reconnect_max=2.0)
    process = await start_boot_node(listen)
    try:
        address = f"{listen}/p2p/{boot.peer_id}"
        async with Libp2pTransport.open(identity(6), bootstrap=[address], config=config) as node:
            await eventually(lambda: boot.peer_id in node.connected_peers(), timeout=20)
            process.kill()
            await process.wait()
            await eventually(lambda: boot.peer_id not in node.connected_peers())
            failed = node.stats["bootstrap.failed"]
            caplog.clear()
            with caplog.at_level(logging.INFO):
                await eventually(lambda: node.stats["bootstrap.failed"] >= failed + 2)
                process = await start_boot_node(listen)
                # Well inside py-libp2p's 60 s negative cache (and the child's start-up).
                await eventually(lambda: boot.peer_id in node.connected_peers(), timeout=40)
            ours = [r for r in caplog.records if r.name.startswith("axl")]
            assert ours, "each failed re-dial is logged"
            noisy = [r for r in ours if r.exc_info or "\n" in r.getMessage()]
            assert not noisy, [r.getMessage()[:300] for r in noisy]
    finally:
        process.kill()
        await process.wait()


async def test_peer_record_checks_are_cached_only_for_records_that_verified() -> None:
    """The cache skips re-verifying bytes already verified for a peer; a record signed by
    somebody else, or garbage, still goes through py-libp2p's check and fails."""
    gossipsub_class()  # installs the caches
    import libp2p.pubsub.pubsub as pubsub_module
    from libp2p.peer.id import ID
    from libp2p.peer.peerstore import env_to_send_in_RPC
    from libp2p.pubsub.pb import rpc_pb2

    check = pubsub_module.maybe_consume_signed_record  # type: ignore[attr-defined]
    async with (
        Libp2pTransport.open(identity(7), config=CONFIG) as alice,
        Libp2pTransport.open(identity(8), config=CONFIG) as bob,
    ):
        assert alice._host is not None and bob._host is not None
        record, _ = env_to_send_in_RPC(alice._host)
        rpc = rpc_pb2.RPC(senderRecord=record)
        alice_id, carol_id = ID(identity(7).peer_id.raw), ID(identity(9).peer_id.raw)
        assert check(rpc, bob._host, alice_id)
        assert check(rpc, bob._host, alice_id)  # from the cache
        assert not check(rpc, bob._host, carol_id)  # alice's record claimed by carol
        assert not check(rpc_pb2.RPC(senderRecord=b"\x01garbage"), bob._host, alice_id)
        assert check(rpc_pb2.RPC(), bob._host, alice_id)  # no record: nothing to check


async def test_a_cached_gossip_record_older_than_the_stored_one_is_refused_again() -> None:
    """A restarted peer's newer record supersedes the old one: an RPC carrying the old
    bytes, cached as verified, is refused as py-libp2p refuses it, not waved through by the
    cache; a record the peerstore dropped is checked and stored again."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.utils import maybe_consume_signed_record

    from axl._libp2p_gossip_records import cached_consume

    from .test_libp2p_dht_records import superseded_records

    checked: list[bool] = []

    def counted(msg: Any, host: Any, peer_id: Any) -> bool:
        ok = maybe_consume_signed_record(msg, host, peer_id)
        checked.append(ok)
        return ok

    check = cached_consume(counted)
    async with (
        Libp2pTransport.open(identity(20), config=CONFIG) as alice,
        Libp2pTransport.open(identity(21), config=CONFIG) as bob,
    ):
        assert alice._host is not None and bob._host is not None
        alice_id = ID(alice.local_peer.raw)
        old, new = await superseded_records(alice)
        stale = rpc_pb2.RPC(senderRecord=old)
        fresh = rpc_pb2.RPC(senderRecord=new)
        assert check(stale, bob._host, alice_id)
        assert check(stale, bob._host, alice_id)
        assert checked == [True]  # cached
        assert check(fresh, bob._host, alice_id)  # alice restarted: a newer record
        assert not check(stale, bob._host, alice_id)  # refused again, not from the cache
        assert checked == [True, True, False]
        assert check(fresh, bob._host, alice_id)
        assert len(checked) == 3  # the stored record: cached
        records: dict[Any, Any] = bob._host.get_peerstore().peer_record_map  # type: ignore[attr-defined]
        records.pop(alice_id)  # the peerstore drops it
        assert check(fresh, bob._host, alice_id)
        assert len(checked) == 4 and alice_id in records  # checked and stored again


async def test_nodes_that_know_only_the_bootstrap_node_connect_to_each_other() -> None:
    """py-libp2p's auto-connector (aiming at 200 connections, churning them) is stopped; the
    transport's own connector dials known peers up to ``target_peers``."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, target_peers=3)
    async with Libp2pTransport.open(identity(10), config=config) as boot:
        addrs = boot.listen_addrs
        async with (
            Libp2pTransport.open(identity(11), bootstrap=addrs, config=config) as a,
            Libp2pTransport.open(identity(12), bootstrap=addrs, config=config) as b,
            Libp2pTransport.open(identity(13), bootstrap=addrs, config=config) as c,
        ):
            nodes = [boot, a, b, c]
            everyone = {node.local_peer for node in nodes}
            await eventually(
                lambda: all(n.connected_peers() == everyone - {n.local_peer} for n in nodes),
                timeout=30,
            )
            for node in nodes:
                assert node._host is not None
                network: Any = node._host.get_network()
                assert not network.auto_connector._started


async def test_a_gossip_message_costs_one_yamux_frame_not_four(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """py-libp2p sent a WINDOW_UPDATE after every stream read, three per GossipSub RPC (two
    varint bytes, then the body): four frames per message. Updates are now sent per half
    window consumed. Counted, not timed: 40 small messages, a handful of updates at most."""
    from libp2p.stream_muxer.yamux import yamux

    frames: dict[int, int] = {}
    counting = False
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)
    async with (
        Libp2pTransport.open(identity(14), config=config) as publisher,
        Libp2pTransport.open(identity(15), config=config) as subscriber,
    ):
        original = yamux.Yamux._write_frame  # as the transport installed it

        async def write_frame(self: Any, data: bytes, *args: Any, **kwargs: Any) -> Any:
            if counting:
                frames[data[1]] = frames.get(data[1], 0) + 1
            return await original(self, data, *args, **kwargs)

        monkeypatch.setattr(yamux.Yamux, "_write_frame", write_frame)
        await subscriber.connect(publisher.listen_addrs[0])
        await subscriber.subscribe("ticks")
        await publisher.subscribe("ticks")
        await eventually(lambda: subscriber.local_peer in publisher.topic_peers("ticks"))
        assert publisher._pubsub is not None
        router: Any = publisher._pubsub.router
        # "adaptive" gossip would stretch a 1 s heartbeat to 30-60 s under a thin mesh
        assert not router.adaptive_gossip_enabled
        await eventually(lambda: len(router.mesh.get("ticks", ())) == 1)
        counting = True
        flat_before = publisher.stats["gossip.rpcs_flat"]  # data frames written in one step
        for burst in range(4):  # py-libp2p queues at most 32 RPCs per peer
            for n in range(10 * burst, 10 * burst + 10):
                await publisher.publish("ticks", b"tick %d" % n + bytes(200))
            for n in range(10 * burst, 10 * burst + 10):
                with trio.fail_after(10):
                    assert (await subscriber.receive()).frame.startswith(b"tick %d" % n)
        counting = False
        flat = publisher.stats["gossip.rpcs_flat"] - flat_before
    data, window_updates = frames.get(0, 0) + flat, frames.get(1, 0)
    assert data >= 4  # each burst of 10 may go out as one coalesced RPC
    assert window_updates <= 4, frames


class Note(Message, tag="test.swarm_note"):
    n: int


async def test_gossip_without_libp2p_signatures_still_delivers_only_signed_envelopes() -> None:
    """GossipSub runs unsigned: the AXL envelope inside carries the signature that counts. A
    rogue gossip peer re-publishing a victim's frame tampered, as garbage, or verbatim (a
    replay) gets each one rejected by the receiving bus, counted; the handler sees only the
    victim's genuine messages, and the victim's next message still arrives (content-bound
    message ids: nothing the rogue sends can make it look already seen)."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)
    victim_id, receiver_id = identity(16), identity(17)
    got: list[int] = []

    async def on_note(message: Note, ctx: Context) -> None:
        assert ctx.sender == victim_id.peer_id
        got.append(message.n)

    async with (
        Libp2pTransport.open(victim_id, config=config) as victim_t,
        Libp2pTransport.open(receiver_id, config=config) as receiver_t,
        Libp2pTransport.open(identity(18), config=config) as rogue,
        open_bus(victim_id, victim_t) as victim,
        open_bus(receiver_id, receiver_t) as receiver,
    ):
        for node in (receiver_t, rogue):
            await node.connect(victim_t.listen_addrs[0])
        await rogue.connect(receiver_t.listen_addrs[0])
        receiver.on(Note, on_note)
        await receiver.join("notes")
        await victim.join("notes")
        await rogue.subscribe("notes")
        everyone = {victim_id.peer_id, receiver_id.peer_id, rogue.local_peer}
        for node in (victim_t, receiver_t, rogue):

            def sees_everyone(n: Libp2pTransport = node) -> bool:
                return everyone - {n.local_peer} <= n.topic_peers("notes")

            await eventually(sees_everyone)
        await victim.publish("notes", Note(n=1))
        with trio.fail_after(10):
            genuine = (await rogue.receive()).frame
        await eventually(lambda: got == [1])

        tampered = genuine[:-1] + bytes([genuine[-1] ^ 1])
        for forged in (tampered, b"not an envelope", genuine):
            await rogue.publish("notes", forged)
        await eventually(lambda: receiver.stats.total("rejected.") >= 3)
        await victim.publish("notes", Note(n=2))
        await eventually(lambda: got == [1, 2])


def test_message_ids_bind_the_content() -> None:
    """Unsigned gossip lets anyone claim any origin and sequence number; with py-libp2p's
    ``from ‖ seqno`` ids a forger could pre-empt a victim's next message."""
    from libp2p.pubsub.pb import rpc_pb2

    def msg(origin: bytes, seqno: bytes, data: bytes) -> Any:
        return rpc_pb2.Message(from_id=origin, seqno=seqno, data=data)

    victim = identity(19).peer_id.raw
    real = message_id(msg(victim, b"\x00" * 8, b"the real one"))
    assert message_id(msg(victim, b"\x00" * 8, b"a forgery")) != real
    assert message_id(msg(victim, b"\x00" * 8, b"the real one")) == real
    assert message_id(msg(victim + b"\x00", b"\x00" * 7, b"the real one")) != real


def test_address_announcements_are_signed_by_their_origin() -> None:
    alice, mallory = identity(20), identity(21)
    addrs = ["/ip4/127.0.0.1/tcp/4001"]
    now = 1_000_000.0
    payload = sign_announcement(alice, addrs, now=now)
    assert read_announcement(alice.peer_id, payload, now=now + 5) == Announcement(now, addrs)
    # claimed by somebody else, forged, tampered, stale, cut short
    assert read_announcement(mallory.peer_id, payload, now=now) == "bad_signature"
    forged = sign_announcement(mallory, ["/ip4/6.6.6.6/tcp/1"], now=now)
    assert read_announcement(alice.peer_id, forged, now=now) == "bad_signature"
    tampered = payload[:-1] + b"2"
    assert read_announcement(alice.peer_id, tampered, now=now) == "bad_signature"
    assert read_announcement(alice.peer_id, payload, now=now + 3600) == "stale"
    assert read_announcement(alice.peer_id, payload[:64], now=now) == "malformed"
    assert read_announcement(alice.peer_id, b"/ip4/1.2.3.4/tcp/1", now=now) == "malformed"
    unstamped = alice.sign(b"axl/peer-announce/1\x00" + alice.peer_id.raw + b"x\n/ip4/1")
    assert read_announcement(alice.peer_id, unstamped + b"x\n/ip4/1", now=now) == "malformed"


async def test_a_dht_lookup_finds_a_peer_that_is_no_neighbour() -> None:
    """Eight hosts in a tree, nobody exchanging addresses: the root knows only its child, the
    target hangs two hops below. A Kademlia lookup from the root returns the target's address,
    and a message sent to it then arrives."""
    from contextlib import AsyncExitStack

    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)
    config = replace(config, target_peers=0)  # only the links below, no dialling around
    edges = {1: 0, 2: 1, 3: 1, 4: 1, 5: 4, 6: 4, 7: 4}  # child -> parent
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(Libp2pTransport.open(identity(30 + n), config=config))
            for n in range(8)
        ]
        for child, parent in edges.items():
            await nodes[child].connect(nodes[parent].listen_addrs[0])
        root, target = nodes[0], nodes[7]
        assert target.local_peer not in root.known_peers()
        for node in nodes:

            def has_contacts(n: Libp2pTransport = node) -> bool:
                assert n._dht is not None
                return n._dht.table_size() >= 1

            await eventually(has_contacts)
        addrs = await root.find_peer(target.local_peer, timeout=20.0)
        bare = {a.rsplit("/p2p/", 1)[0] for a in target.listen_addrs}
        assert {a.rsplit("/p2p/", 1)[0] for a in addrs} & bare
        assert target.local_peer in root.known_peers()
        await root.send(target.local_peer, b"found you")
        with trio.fail_after(10):
            got = await target.receive()
        assert (got.frame, got.via) == (b"found you", root.local_peer)
        with pytest.raises(PeerUnreachable):
            await root.find_peer(identity(99).peer_id, timeout=5.0)


async def test_ids_advertised_in_ihave_are_the_ids_of_the_seen_cache() -> None:
    """py-libp2p's message cache keyed messages by ``from ‖ seqno`` whatever id the pubsub
    used: none of the ids a node gossiped (IHAVE) matched its peers' seen caches, so every
    IHAVE drew an IWANT and a resend. Every id in the cache window must be one the seen cache
    knows, on the publisher and on the receiver."""
    # one heartbeat at start, none while the test runs: the cache window does not shift
    config = Libp2pConfig(gossip_heartbeat=60.0, dial_timeout=3.0, peer_exchange=False)
    async with (
        Libp2pTransport.open(identity(22), config=config) as publisher,
        Libp2pTransport.open(identity(23), config=config) as subscriber,
    ):
        await subscriber.connect(publisher.listen_addrs[0])
        await subscriber.subscribe("ticks")
        await eventually(lambda: subscriber.local_peer in publisher.topic_peers("ticks"))
        for n in range(5):
            await publisher.publish("ticks", b"tick %d" % n)
        for _ in range(5):
            with trio.fail_after(10):
                await subscriber.receive()
        for node in (publisher, subscriber):
            assert node._pubsub is not None
            router: Any = node._pubsub.router
            window = router.mcache.window("ticks")
            assert len(window) == 5
            assert all(node._pubsub.seen_messages.has(mid) for mid in window)
            # equivocation ("same from and seqno, other data") cannot be told unsigned
            message = router.mcache.get(window[0])
            forged = type(message)(
                from_id=message.from_id, seqno=message.seqno, data=b"x", topicIDs=["ticks"]
            )
            assert router._check_equivocation(forged)


async def test_the_heartbeat_runs_and_bounds_the_message_cache() -> None:
    """The GossipSub router is a service of its own: never started, it had no heartbeat, and
    its message cache (every message a node published or forwarded) grew for as long as the
    node ran. Running, the cache keeps ``gossip_history`` heartbeats of messages."""
    config = replace(CONFIG, gossip_heartbeat=0.1, gossip_window=1, gossip_history=2)
    async with (
        Libp2pTransport.open(identity(24), config=config) as publisher,
        Libp2pTransport.open(identity(25), config=config) as subscriber,
    ):
        await subscriber.connect(publisher.listen_addrs[0])
        await subscriber.subscribe("ticks")
        await eventually(lambda: subscriber.local_peer in publisher.topic_peers("ticks"))
        for n in range(20):
            await publisher.publish("ticks", b"tick %d" % n)
        for _ in range(20):
            with trio.fail_after(10):
                await subscriber.receive()
        caches = [node._pubsub.router.mcache for node in (publisher, subscriber)]  # type: ignore[union-attr]
        await eventually(lambda: all(not cache.msgs for cache in caches), timeout=5)


async def test_a_mesh_link_lost_to_a_race_is_grafted_again_by_the_heartbeat() -> None:
    """A peer is grafted when its subscription arrives only if it is already known as a
    GossipSub peer; a subscription that came first (a race of the two streams) left it out
    of the mesh, and without a heartbeat nothing ever grafted it: a node whose only topic
    peer was lost that way published into an empty mesh for good (a submitter's job was
    never seen by the one solver). The heartbeat grafts it back."""
    async with (
        Libp2pTransport.open(identity(26), config=CONFIG) as a,
        Libp2pTransport.open(identity(27), config=CONFIG) as b,
    ):
        await b.connect(a.listen_addrs[0])
        for node in (a, b):
            await node.subscribe("jobs")
        await eventually(lambda: b.local_peer in a.topic_peers("jobs"))
        router: Any = a._pubsub.router  # type: ignore[union-attr]
        await eventually(lambda: any(str(p) == str(b.local_peer) for p in router.mesh["jobs"]))
        router.mesh["jobs"].clear()  # what the race left: subscribed, known, not grafted
        await eventually(lambda: any(str(p) == str(b.local_peer) for p in router.mesh["jobs"]))
        await a.publish("jobs", b"job 1")
        with trio.fail_after(10):
            frame = await b.receive()
        assert frame.frame == b"job 1" and frame.topic == "jobs"


@pytest.mark.slow
async def test_a_dense_swarm_keeps_its_meshes_through_the_heartbeat() -> None:
    """Twelve fully connected hosts: every one grafts D peers when it joins, so meshes form
    at about 2D, above D_high. py-libp2p's heartbeat pruned them to D with a 60 s backoff per
    pruned link; a link survives only if both ends keep it, so most went at once and the
    backoff left nobody to graft: hosts with empty meshes, most messages lost. Here the
    heartbeat only grafts (below D_low), a GRAFT past D_high is refused instead, and every
    host gets every message."""
    from contextlib import AsyncExitStack

    config = replace(CONFIG, gossip_heartbeat=0.1)
    count = 12
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(Libp2pTransport.open(identity(40 + n), config=config))
            for n in range(count)
        ]
        for n, node in enumerate(nodes):
            for other in nodes[n + 1 :]:
                await node.connect(other.listen_addrs[0])
        for node in nodes:
            await node.subscribe("dense")
        await eventually(lambda: all(len(node.topic_peers("dense")) == count - 1 for node in nodes))
        await trio.sleep(1.0)  # ten heartbeats: time for any pruning to happen
        for n, node in enumerate(nodes):
            await node.publish("dense", b"from %d" % n)
        for node in nodes:
            got: set[bytes] = set()
            with trio.move_on_after(10):
                while len(got) < count - 1:
                    got.add((await node.receive()).frame)
            assert len(got) == count - 1, f"{len(got)} of {count - 1} messages"
        # bounded all the same: a GRAFT that would grow a mesh past D_high is refused
        meshes = [len(node._pubsub.router.mesh["dense"]) for node in nodes]  # type: ignore[union-attr]
        assert max(meshes) <= config.gossip_degree_high, meshes
        assert min(meshes) >= config.gossip_degree_low, meshes


async def test_frame_writes_skip_the_debug_line_unless_debug_logging_is_on() -> None:
    """The lean frame writer writes the same bytes under the connection's write lock; with
    debug logging on, py-libp2p's own writer (and its debug line) runs instead."""
    from axl._libp2p_yamux import _lean_write_frame

    calls: list[str] = []

    async def original(self: Any, data: bytes) -> None:
        calls.append("original")

    class Secured:
        async def write(self, data: bytes) -> None:
            calls.append(f"wrote {data!r}")

    class Conn:
        _write_lock = trio.Lock()
        secured_conn = Secured()

    logger = logging.getLogger("test.yamux.lean")
    write = _lean_write_frame(original, logger)
    logger.setLevel(logging.INFO)
    await write(Conn(), b"frame")
    logger.setLevel(logging.DEBUG)
    await write(Conn(), b"frame")
    assert calls == ["wrote b'frame'", "original"]

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_gossip import gossipsub_class

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)


async def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


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
        assert publisher._pubsub is not None
        await eventually(lambda: len(publisher._pubsub.peers) == 2)  # both speak pubsub

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

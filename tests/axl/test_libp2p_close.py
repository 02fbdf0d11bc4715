"""Closing a libp2p transport: its port stops accepting and its peers see the close at once.

The host used to be closed from inside the nursery just cancelled, so the close was cancelled
at its first await and never run again: the listener kept accepting connections (and
completing Noise handshakes under the closed node's identity), and connected peers only
noticed when their own timeouts fired."""

from __future__ import annotations

import socket

import trio

from axl import Identity, Libp2pConfig, Libp2pTransport


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0x90 + n]) * 32)


def _port(addr: str) -> int:
    return int(addr.split("/tcp/")[1].split("/")[0])


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return False
        return True


async def test_a_closed_transport_stops_listening() -> None:
    async with Libp2pTransport.open(identity(0)) as node:
        port = _port(node.listen_addrs[0])
        assert _accepts(port)
    assert not _accepts(port)


async def test_peers_see_a_clean_close_at_once() -> None:
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=2.0)
    async with Libp2pTransport.open(identity(1), config=config) as stays:
        async with Libp2pTransport.open(
            identity(2), bootstrap=stays.listen_addrs, config=config
        ) as leaves:
            with trio.fail_after(10):
                while leaves.local_peer not in stays.connected_peers():
                    await trio.sleep(0.02)
        with trio.fail_after(2):  # well before any keep-alive or read timeout
            while leaves.local_peer in stays.connected_peers():
                await trio.sleep(0.02)


async def test_a_node_closes_all_its_connections_at_once() -> None:
    """py-libp2p's swarm closed connections one after the other, each ending in a 0.1 s sleep,
    so a node with many peers took seconds to stop (40 peers: ≈ 8 s, past the 5 s bound
    on the host's close, which left the rest half-open). Every close must have started
    before any of them finishes: each waits here until all have started, which a close one
    after the other never reaches."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=2.0, peer_exchange=False)
    count = 4
    started: set[int] = set()
    all_started = trio.Event()
    saw_all: list[bool] = []

    def closing(conn: object, original: object) -> object:
        async def close() -> None:
            started.add(id(conn))  # py-libp2p closes a connection twice
            if len(started) == count:
                all_started.set()
            with trio.move_on_after(3):
                await all_started.wait()
            saw_all.append(all_started.is_set())
            await original()  # type: ignore[operator]

        return close

    async with (
        Libp2pTransport.open(identity(3), config=config) as peer_a,
        Libp2pTransport.open(identity(4), config=config) as peer_b,
        Libp2pTransport.open(identity(5), config=config) as peer_c,
        Libp2pTransport.open(identity(6), config=config) as peer_d,
    ):
        async with Libp2pTransport.open(identity(7), config=config) as node:
            for peer in (peer_a, peer_b, peer_c, peer_d):
                await node.connect(peer.listen_addrs[0])
            network = node._host.get_network()  # type: ignore[union-attr]
            conns = [c for cs in network.connections.values() for c in cs]
            assert len(conns) == count
            for conn in conns:
                conn.close = closing(conn, conn.close)  # type: ignore[method-assign]
    assert len(started) == count
    assert saw_all and all(saw_all)


async def test_a_connection_whose_close_hangs_keeps_no_other_open() -> None:
    """A peer that stalls the close of its connection (here: a close that never returns)
    costs only that connection: the node's other peers see the close at once, well before the
    transport's bound on closing connections (2 s) gives up on the stalled one."""
    config = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=2.0, peer_exchange=False)
    opened: list[Libp2pTransport] = []
    close_now = trio.Event()

    async def run_node(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with Libp2pTransport.open(identity(11), config=config) as node:
            opened.append(node)
            task_status.started()
            await close_now.wait()

    stalled: list[bool] = []

    async def stall_once() -> None:  # the transport's bounded wait gives up on it; then it goes
        if not stalled:
            stalled.append(True)
            await trio.sleep_forever()

    async with (
        Libp2pTransport.open(identity(8), config=config) as stalls,
        Libp2pTransport.open(identity(9), config=config) as peer_b,
        Libp2pTransport.open(identity(10), config=config) as peer_c,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(run_node)
        (node,) = opened
        for peer in (stalls, peer_b, peer_c):
            await node.connect(peer.listen_addrs[0])
        network = node._host.get_network()  # type: ignore[union-attr]
        for pid, conns in network.connections.items():
            if pid.to_bytes() == stalls.local_peer.raw:
                for conn in conns:
                    conn.close = stall_once  # type: ignore[method-assign]
        close_now.set()
        with trio.fail_after(1.5):  # under the 2 s bound
            while any(node.local_peer in p.connected_peers() for p in (peer_b, peer_c)):
                await trio.sleep(0.02)

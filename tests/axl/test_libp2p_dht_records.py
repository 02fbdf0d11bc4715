"""The DHT's cached record checks and connection types (:mod:`axl._libp2p_dht_records`):
a record is verified once per peer, never trusted for another peer, garbage is refused every
time, and the connection type reported for a closer peer is py-libp2p's."""

from __future__ import annotations

import logging
from typing import Any

import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_dht_records import cached_kad_consume, connection_type, install_dht_caches

from .clusters import eventually

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([0x60 + n]) * 32)


def counted_check() -> tuple[Any, list[bool]]:
    """The cached record check over py-libp2p's, and the list of py-libp2p's verdicts (one
    per check that reached it)."""
    from libp2p.kad_dht.utils import maybe_consume_signed_record

    checked: list[bool] = []

    def counted(msg: Any, host: Any, peer_id: Any = None) -> bool:
        ok = maybe_consume_signed_record(msg, host, peer_id)
        checked.append(ok)
        return ok

    return cached_kad_consume(counted), checked


async def superseded_records(node: Libp2pTransport) -> tuple[bytes, bytes]:
    """Two signed peer records of ``node`` (as envelopes), the second newer: what a peer
    that restarted on a new port sends after its old one."""
    from libp2p.peer.id import ID
    from libp2p.peer.peerstore import create_signed_peer_record
    from multiaddr import Multiaddr

    assert node._host is not None
    peer, key = ID(node.local_peer.raw), node._host.get_private_key()
    old = create_signed_peer_record(peer, [Multiaddr("/ip4/127.0.0.1/tcp/1")], key)
    await trio.sleep(0.01)  # sequence numbers are timestamps
    new = create_signed_peer_record(peer, [Multiaddr("/ip4/127.0.0.1/tcp/2")], key)
    return old.marshal_envelope(), new.marshal_envelope()


async def test_closer_peer_records_are_verified_once_and_only_for_their_own_peer() -> None:
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.peer.id import ID
    from libp2p.peer.peerstore import env_to_send_in_RPC

    check, checked = counted_check()
    async with (
        Libp2pTransport.open(identity(1), config=CONFIG) as alice,
        Libp2pTransport.open(identity(2), config=CONFIG) as bob,
    ):
        assert alice._host is not None and bob._host is not None
        record, _ = env_to_send_in_RPC(alice._host)
        alice_raw, carol_raw = identity(1).peer_id.raw, identity(3).peer_id.raw
        closer = Message.Peer(id=alice_raw, signedRecord=record)
        assert check(closer, bob._host)
        assert check(closer, bob._host)  # from the cache
        assert checked == [True]
        # Alice's record named as carol's: checked (not taken from alice's entry) and refused,
        # every time (a failure is never remembered).
        forged = Message.Peer(id=carol_raw, signedRecord=record)
        assert not check(forged, bob._host)
        assert not check(forged, bob._host)
        assert checked == [True, False, False]
        garbage = Message.Peer(id=alice_raw, signedRecord=b"\x01garbage")
        assert not check(garbage, bob._host)
        assert not check(garbage, bob._host)
        assert checked[-2:] == [False, False]
        assert check(Message.Peer(id=alice_raw), bob._host)  # no record: nothing to check
        # A request's sender record: bound to the peer that sent it.
        request = Message(type=Message.MessageType.FIND_NODE, senderRecord=record)
        assert check(request, bob._host, ID(alice_raw))
        assert not check(request, bob._host, ID(carol_raw))
        before = len(checked)
        assert check(request, bob._host, ID(alice_raw))
        assert len(checked) == before  # cached for alice only
        assert check(Message(type=Message.MessageType.FIND_NODE), bob._host, ID(alice_raw))


async def test_connection_types_match_what_the_host_knows() -> None:
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.peer.id import ID

    async with (
        Libp2pTransport.open(identity(4), config=CONFIG) as alice,
        Libp2pTransport.open(identity(5), config=CONFIG) as bob,
        Libp2pTransport.open(identity(6), config=CONFIG) as carol,
    ):
        assert alice._host is not None
        await alice.connect(bob.listen_addrs[0])
        bob_id, carol_id = ID(bob.local_peer.raw), ID(carol.local_peer.raw)
        await eventually(lambda: bob_id in alice._host.get_connected_peers())  # type: ignore[union-attr]
        types = Message.ConnectionType
        assert connection_type(alice._host, bob_id) == types.CONNECTED
        assert connection_type(alice._host, carol_id) == types.NOT_CONNECTED
        from multiaddr import Multiaddr

        bare = carol.listen_addrs[0].rsplit("/p2p/", 1)[0]
        alice._host.get_peerstore().add_addrs(carol_id, [Multiaddr(bare)], 60)
        assert connection_type(alice._host, carol_id) == types.CAN_CONNECT
        await trio.lowlevel.checkpoint()


async def test_the_dht_modules_call_the_cached_helpers_once_a_transport_runs() -> None:
    import libp2p.kad_dht.kad_dht as kad_dht
    import libp2p.kad_dht.peer_routing as peer_routing

    async with Libp2pTransport.open(identity(7), config=CONFIG):
        assert kad_dht.get_connection_type is connection_type
        for module in (kad_dht, peer_routing):
            consume = module.maybe_consume_signed_record
            assert consume.__module__ == "axl._libp2p_dht_records"
            assert module.env_to_send_in_RPC.__module__ == "axl._libp2p_gossip_records"


async def test_our_find_node_query_is_answered_by_a_stock_py_libp2p_dht() -> None:
    """Our lean FIND_NODE client against py-libp2p's own DHT server: the named peer and its
    address are learned, and a peer the routing table already holds is not inserted again
    (the responder is refreshed on every query)."""
    import multiaddr
    from libp2p import new_host
    from libp2p.kad_dht import DHTMode, KadDHT
    from libp2p.peer.id import ID
    from libp2p.peer.peerinfo import PeerInfo
    from libp2p.tools.anyio_service import background_trio_service

    from axl._libp2p_dht_records import query_closest

    stock = new_host(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
    stock_dht = KadDHT(stock, DHTMode.SERVER, enable_random_walk=False)
    far = ID(identity(9).peer_id.raw)  # a peer only the stock node knows, never dialled
    far_addr = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/9")
    async with (
        stock.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        background_trio_service(stock_dht),
        Libp2pTransport.open(identity(8), config=CONFIG) as ours,
    ):
        stock.get_peerstore().add_addrs(far, [far_addr], 600)
        assert await stock_dht.routing_table.add_peer(
            PeerInfo(far, [far_addr]), skip_server_mode_check=True
        )
        host, dht = ours._host, ours._dht
        assert host is not None and dht is not None
        await host.connect(PeerInfo(stock.get_id(), stock.get_addrs()))
        table = dht.kad.routing_table
        inserted: list[Any] = []
        add_peer = table.add_peer

        async def counted(peer: Any, **kwargs: Any) -> bool:
            inserted.append(peer.peer_id if isinstance(peer, PeerInfo) else peer)
            return bool(await add_peer(peer, **kwargs))

        table.add_peer = counted
        for round_ in range(2):
            learned: list[Any] = []
            with trio.fail_after(10):
                await query_closest(dht.kad, stock.get_id(), far.to_bytes(), learned)
            assert far in learned
            assert far_addr in host.get_peerstore().addrs(far)
            assert table.peer_in_table(far)
            assert inserted.count(stock.get_id()) == round_ + 1  # the responder, refreshed
            assert inserted.count(far) == 1  # inserted once, when it was new
        # The query's stream was closed: the stock handler finished.
        await eventually(lambda: stock_dht._inbound_limiter.borrowed_tokens == 0)


async def test_a_cached_record_older_than_the_stored_one_is_refused_as_py_libp2p_refuses_it() -> (
    None
):
    """A restarted peer's newer record supersedes the old one: the old bytes, cached as
    verified, must not slip back in (py-libp2p refuses an older record, and the closer peer
    carrying it, whose addresses may be dead); a record the peerstore dropped is checked and
    stored again."""
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.peer.id import ID

    check, checked = counted_check()
    async with (
        Libp2pTransport.open(identity(10), config=CONFIG) as alice,
        Libp2pTransport.open(identity(11), config=CONFIG) as bob,
    ):
        assert alice._host is not None and bob._host is not None
        alice_id = ID(alice.local_peer.raw)
        old, new = await superseded_records(alice)
        raw = alice.local_peer.raw
        stale = Message.Peer(id=raw, signedRecord=old)
        fresh = Message.Peer(id=raw, signedRecord=new)
        assert check(stale, bob._host)
        assert check(stale, bob._host)
        assert checked == [True]  # cached
        assert check(fresh, bob._host)  # alice restarted: a newer record
        assert not check(stale, bob._host)  # the old one is refused again, not taken from cache
        assert checked == [True, True, False]
        assert check(fresh, bob._host)
        assert len(checked) == 3  # the stored record: cached
        store: Any = bob._host.get_peerstore()
        records: dict[Any, Any] = store.peer_record_map
        records.pop(alice_id)  # the peerstore drops it
        assert check(fresh, bob._host)
        assert len(checked) == 4  # checked and stored again
        assert alice_id in records


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_dht_stream_ended_by_its_client_is_not_logged_as_a_failure() -> None:
    """py-libp2p's DHT server logged a WARNING for every client that closed its stream after
    its query (its read raises StreamEOF where it expects a clean end); other read failures
    stay WARNINGs, and the end is still there at DEBUG."""
    from libp2p.network.stream.exceptions import StreamEOF, StreamReset

    install_dht_caches()
    logger = logging.getLogger("libp2p.kad_dht.kad_dht")
    handler = Collect()
    records = handler.records
    logger.addHandler(handler)
    level = logger.level
    try:
        logger.setLevel(logging.WARNING)
        logger.warning("Failed to read DHT message from stream: %s", StreamEOF())
        logger.warning("Failed to read DHT message from stream: %s", StreamReset("reset"))
        assert [(r.levelname, str(r.args[0])) for r in records] == [("WARNING", "reset")]  # type: ignore[index]
        records.clear()
        logger.setLevel(logging.DEBUG)
        logger.warning("Failed to read DHT message from stream: %s", StreamEOF())
        assert [r.levelname for r in records] == ["DEBUG"]
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)

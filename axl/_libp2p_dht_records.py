"""Cheaper FIND_NODE handling in py-libp2p's Kademlia DHT (``libp2p.kad_dht``), same wire.

py-libp2p's DHT does per query, on both sides, work whose answer rarely changes:

* **Our signed peer record.** Every FIND_NODE request and response carries the sender's signed
  peer record; py-libp2p rebuilds the host's address list to check that its cached record is
  current (``env_to_send_in_RPC``) each time. The bytes are reused here for a few seconds,
  as the gossip router does (:mod:`axl._libp2p_gossip`).
* **Records it already checked.** A response names up to 20 closer peers, each with its signed
  record, and py-libp2p verifies every one (an Ed25519 verification and two protobuf parses)
  and hands it to the peerstore, although in a settled swarm they are the records it verified
  on the previous query. A record already verified for the same peer (same bytes, same
  answer) is not verified again for 10 minutes (well under the peerstore's 2 h for it)
  while the peerstore holds that very record (same sequence number;
  :class:`axl._libp2p_gossip_records.RecordVerdicts`); a new or changed record, one older
  than the stored one (refused, as py-libp2p refuses it) and one the peerstore dropped go
  through py-libp2p's check, and a failed check is never remembered. (Re-consuming the same
  record would only have reset the peer's addresses to the record's, erasing newer
  announced ones.)
* **Connection type per closer peer.** A response reports for each peer whether we are
  connected to it; py-libp2p copies the list of connected peers and scans it for each of the
  20 (O(peers) each); here it is one dictionary look-up.

The replacements are installed once per process in place of the module-level names the DHT
modules call (the pattern of :func:`axl._libp2p_gossip_records.install_record_caches`), before any
host runs; nothing in site-packages changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

logger = logging.getLogger("axl.libp2p")
_installed = False


def install_dht_caches() -> None:
    """Put the cached record and connection-type helpers in py-libp2p's DHT modules
    (idempotent)."""
    global _installed
    if _installed:
        return
    import libp2p.kad_dht.kad_dht as kad_dht
    import libp2p.kad_dht.peer_routing as peer_routing
    from libp2p.kad_dht.utils import maybe_consume_signed_record as consume
    from libp2p.peer.peerstore import env_to_send_in_RPC as make_env

    from ._libp2p_gossip_records import cached_record

    cached_env = cached_record(make_env)
    cached_consume = cached_kad_consume(consume)
    for module in (kad_dht, peer_routing):
        module.env_to_send_in_RPC = cached_env  # type: ignore[attr-defined]
        module.maybe_consume_signed_record = cached_consume  # type: ignore[attr-defined]
    kad_dht.get_connection_type = connection_type
    logging.getLogger(kad_dht.__name__).addFilter(StreamEndIsNotAFailure())
    _installed = True


class StreamEndIsNotAFailure(logging.Filter):
    """py-libp2p's DHT server reads requests until its client ends the stream, and means to
    log that end at DEBUG ("clean EOF"), but its read raises ``StreamEOF`` there, which it
    logs as a WARNING ("Failed to read DHT message from stream: "), once for every client
    that closes its stream after its query, as ours do. That record is logged at DEBUG;
    other read failures (a reset, a malformed message) stay WARNINGs."""

    MESSAGE = "Failed to read DHT message from stream: %s"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.MESSAGE or record.levelno != logging.WARNING:
            return True
        from libp2p.network.stream.exceptions import StreamEOF

        args = record.args if isinstance(record.args, tuple) else ()
        if not (args and isinstance(args[0], StreamEOF)):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def cached_kad_consume(consume: Callable[..., bool]) -> Callable[..., bool]:
    """py-libp2p's ``maybe_consume_signed_record`` for DHT messages (a request or response's
    ``senderRecord``, or a closer peer's ``signedRecord``), skipping records it accepted
    before for the same host and peer while the peerstore still holds that very record
    (same sequence number). Otherwise py-libp2p decides: a record older than the stored one
    is refused as before, one the peerstore dropped is stored again."""
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.peer.id import ID

    from ._libp2p_gossip_records import RecordVerdicts

    verdicts = RecordVerdicts()

    def maybe_consume_signed_record(msg: Any, host: Any, peer_id: Any = None) -> bool:
        if not isinstance(msg, Message):  # a closer peer (Message.Peer)
            if not msg.HasField("signedRecord"):
                return True
            record: bytes = msg.signedRecord
            expected: bytes = msg.id
        else:
            if not msg.HasField("senderRecord"):
                return True
            record = msg.senderRecord
            expected = peer_id.to_bytes() if peer_id is not None else b""
        records = getattr(host.get_peerstore(), "peer_record_map", None)  # py-libp2p's store
        if records is None or not expected:
            return consume(msg, host, peer_id)  # nothing to compare a cached record with
        key = (host.get_id().to_bytes(), expected, record)
        return verdicts.check(key, records, ID(expected), lambda: consume(msg, host, peer_id))

    return maybe_consume_signed_record


def connection_type(host: Any, peer_id: Any) -> Any:
    """py-libp2p's ``get_connection_type`` with one dictionary look-up for "connected"."""
    from libp2p.kad_dht.pb.kademlia_pb2 import Message

    try:
        if peer_id in host.get_network().connections:
            return Message.ConnectionType.CONNECTED
        if host.get_peerstore().addrs(peer_id):
            return Message.ConnectionType.CAN_CONNECT
        return Message.ConnectionType.NOT_CONNECTED
    except Exception:
        return Message.ConnectionType.NOT_CONNECTED


async def query_closest(kad: Any, peer: Any, key: bytes, learned: list[Any]) -> None:
    """One FIND_NODE query to ``peer`` for ``key``, appending the peers it names to ``learned``
    (py-libp2p's ``_query_single_peer_for_closest``, same messages and checks, leaner):

    * the request goes out in one stream write (py-libp2p writes its length prefix apart);
    * a named peer's addresses go into the peerstore as before, but the peer goes through the
      routing table's insertion (a lock, a bucket search, and when the bucket is full a ping
      of its oldest peer) only when it is not in the table yet: a response names 20 peers,
      in a settled swarm all of them known. The peer that answered is refreshed as before.

    Errors end the query with what it learned so far (py-libp2p logs and returns too); a peer
    whose stream cannot be opened, or whose own record fails its check, leaves the table.
    ``learned`` may repeat a peer that two queries of a round both named.
    """
    import trio
    from libp2p.kad_dht import peer_routing as routing_module
    from libp2p.kad_dht.common import MAX_DHT_MESSAGE_SIZE, PROTOCOL_ID, QUERY_TIMEOUT
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.peer.id import ID
    from libp2p.peer.peerinfo import PeerInfo
    from libp2p.utils.varint import encode_uvarint, read_varint_prefixed_bytes_limited
    from multiaddr import Multiaddr

    routing: Any = routing_module  # its record helpers, replaced by install_dht_caches
    host = kad.host
    table = kad.routing_table
    local = host.get_id()
    if peer == local:
        return
    store = host.get_peerstore()
    seen: set[bytes] = set()
    stream = None
    try:
        with trio.move_on_after(QUERY_TIMEOUT):
            try:
                addrs = store.addrs(peer)
                if addrs:
                    await table.add_peer(PeerInfo(peer, addrs))
            except Exception as exc:
                logger.debug("routing table: adding %s failed: %r", peer, exc)
            try:
                stream = await host.new_stream(peer, [PROTOCOL_ID])
            except Exception as exc:
                logger.debug("FIND_NODE stream to %s failed: %r", peer, exc)
                table.remove_peer(peer)
                return
            request = Message(type=Message.MessageType.FIND_NODE, key=key)
            request.senderRecord = routing.env_to_send_in_RPC(host)[0]
            data = request.SerializeToString()
            await stream.write(encode_uvarint(len(data)) + data)
            response = Message()
            response.ParseFromString(
                await read_varint_prefixed_bytes_limited(stream, MAX_DHT_MESSAGE_SIZE)
            )
            if response.type != Message.MessageType.FIND_NODE:
                return
            consume = routing.maybe_consume_signed_record
            if not consume(response, host, peer):
                table.remove_peer(peer)  # py-libp2p drops a peer whose record fails
                return
            for named in response.closerPeers:
                if not consume(named, host) or not named.id:
                    continue
                other = ID(named.id)
                if other == local:
                    continue
                if named.id not in seen:
                    seen.add(named.id)
                    learned.append(other)
                addrs = []
                for raw in named.addrs:
                    with suppress(Exception):
                        addrs.append(Multiaddr(raw))
                if addrs:
                    store.add_addrs(other, addrs, 3600)
                    if not table.peer_in_table(other):
                        with suppress(Exception):
                            await table.add_peer(PeerInfo(other, addrs))
    except Exception as exc:
        logger.debug("FIND_NODE to %s failed: %r", peer, exc)
    finally:
        if stream is not None:
            # Shielded: a round ends by cancelling its other queries once one answer names the
            # target, and an unshielded close was cancelled at once, leaving the responder's
            # handler (one of its few inbound DHT slots) waiting for our next request.
            with trio.CancelScope(shield=True), trio.move_on_after(1.0), suppress(Exception):
                await stream.close()

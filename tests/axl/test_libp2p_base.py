"""Helpers shared by the libp2p transport's parts (:mod:`axl._libp2p_base`)."""

from __future__ import annotations

from axl import Identity
from axl._libp2p_base import PEER_IDS_KEPT, _peer_ids, peer_id_of


def test_peer_ids_are_remembered_bounded_and_invalid_ones_refused() -> None:
    peer = Identity.from_seed(b"\x33" * 32).peer_id
    first = peer_id_of(peer.raw)
    assert first == peer
    assert peer_id_of(bytes(peer.raw)) is first  # remembered
    assert peer_id_of(bytearray(peer.raw)) is first  # any bytes-like form
    for raw in (b"", b"\x00" * 38, b"\x12\x20" + b"\x01" * 32):  # empty, wrong prefix, sha256
        assert peer_id_of(raw) is None
        assert raw not in _peer_ids
    for n in range(PEER_IDS_KEPT + 10):  # a flood of distinct valid ids
        assert peer_id_of(peer.raw[:-4] + n.to_bytes(4, "big")) is not None
    assert len(_peer_ids) <= PEER_IDS_KEPT
    assert peer_id_of(peer.raw) == peer

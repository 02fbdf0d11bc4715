from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import Ed25519PrivateKey as Libp2pEd25519Key
from libp2p.peer.id import ID as Libp2pPeerId

from axl import Identity, InsecureKeyFile, InvalidPeerId, KeyFileError, PeerId, verify_signature


@given(st.binary(min_size=32, max_size=32))
def test_peer_id_matches_py_libp2p(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    libp2p_key = Libp2pEd25519Key.from_bytes(seed)
    expected = Libp2pPeerId.from_pubkey(libp2p_key.get_public_key())
    assert str(identity.peer_id) == str(expected)
    assert identity.peer_id.raw == expected.to_bytes()


@given(st.binary(min_size=32, max_size=32))
def test_peer_id_string_round_trip(seed: bytes) -> None:
    peer = Identity.from_seed(seed).peer_id
    assert PeerId.from_string(str(peer)) == peer
    assert PeerId.from_public_key(peer.public_key) == peer


@pytest.mark.parametrize(
    "text", ["", "0OIl", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "12D3"]
)
def test_invalid_peer_ids_are_typed_errors(text: str) -> None:
    with pytest.raises(InvalidPeerId):
        PeerId.from_string(text)


def test_sign_and_verify() -> None:
    identity = Identity.generate()
    signature = identity.sign(b"hello")
    assert verify_signature(identity.peer_id, signature, b"hello")
    assert not verify_signature(identity.peer_id, signature, b"hellO")
    assert not verify_signature(Identity.generate().peer_id, signature, b"hello")


def test_key_file_round_trip_with_0600(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = tmp_path / "keys" / "agent.key"
    identity.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert Identity.load(path).peer_id == identity.peer_id


def test_load_or_create_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    first = Identity.load_or_create(path)
    assert Identity.load_or_create(path).peer_id == first.peer_id


def test_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    Identity.generate().save(path)
    os.chmod(path, 0o644)
    with pytest.raises(InsecureKeyFile, match="chmod 600"):
        Identity.load(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_corrupt_key_file_is_a_typed_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "agent.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError):
        Identity.load(path)


def test_non_ed25519_key_file_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "agent.key"
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="not Ed25519"):
        Identity.load(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no key file"):
        Identity.load(tmp_path / "absent.key")

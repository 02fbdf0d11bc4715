"""Agent identities: Ed25519 key pairs and libp2p-compatible peer ids.

A peer id is the libp2p peer id of the agent's Ed25519 public key: the identity multihash of
the protobuf-encoded public key, written in base58btc (``12D3KooW...``). Because the key is
inlined in the id, a receiver can verify a sender's signature from the peer id alone.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import base58
import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from ._errors import InsecureKeyFile, InvalidPeerId, KeyFileError

# libp2p crypto.proto: PublicKey { KeyType Type = 1; bytes Data = 2; }, KeyType.Ed25519 = 1.
_ED25519_PROTO_PREFIX = b"\x08\x01\x12\x20"
# multihash "identity" code 0x00 with length 36 (the protobuf-encoded key).
_IDENTITY_MULTIHASH_PREFIX = b"\x00\x24"
_PEER_ID_PREFIX = _IDENTITY_MULTIHASH_PREFIX + _ED25519_PROTO_PREFIX
PEER_ID_LENGTH = len(_PEER_ID_PREFIX) + 32


@dataclass(frozen=True, slots=True)
class PeerId:
    """The id of a peer: raw multihash bytes; ``str()`` gives the base58 form."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != PEER_ID_LENGTH or not self.raw.startswith(_PEER_ID_PREFIX):
            raise InvalidPeerId(
                f"not an Ed25519 libp2p peer id ({len(self.raw)} bytes); "
                "AXL peer ids inline a 32-byte Ed25519 key"
            )

    @classmethod
    def from_public_key(cls, public_key: bytes) -> PeerId:
        """The peer id of a raw 32-byte Ed25519 public key."""
        if len(public_key) != 32:
            raise InvalidPeerId(f"an Ed25519 public key has 32 bytes, got {len(public_key)}")
        return cls(_PEER_ID_PREFIX + public_key)

    @classmethod
    def from_string(cls, text: str) -> PeerId:
        """Parse the base58 form; raises :class:`InvalidPeerId`."""
        try:
            raw = base58.b58decode(text.encode("ascii"))
        except ValueError as exc:
            raise InvalidPeerId(f"{text!r} is not base58: {exc}") from exc
        return cls(raw)

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key inlined in the id."""
        return self.raw[len(_PEER_ID_PREFIX) :]

    def __str__(self) -> str:
        return base58.b58encode(self.raw).decode("ascii")

    def __repr__(self) -> str:
        return f"PeerId({self.short()})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: object, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Lets messages have ``PeerId`` fields: raw bytes on the wire, str or bytes accepted."""

        def validate(value: object) -> PeerId:
            if isinstance(value, PeerId):
                return value
            try:
                if isinstance(value, bytes):
                    return cls(value)
                if isinstance(value, str):
                    return cls.from_string(value)
            except InvalidPeerId as exc:
                raise ValueError(str(exc)) from None
            raise ValueError("a peer id is raw bytes or a base58 string")

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda peer: peer.raw if isinstance(peer, PeerId) else peer,
                when_used="always",
            ),
        )

    def short(self) -> str:
        """A short form for logs: the last 8 characters of the base58 id."""
        return "…" + str(self)[-8:]


def verify_signature(peer: PeerId, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is ``peer``'s Ed25519 signature of ``data``.

    Signing and verification run on libsodium (about twice as fast as OpenSSL's Ed25519 here);
    key generation and key files use ``cryptography``.
    """
    if len(signature) != 64:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + data, peer.public_key)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


class Identity:
    """An agent's Ed25519 key pair. Signs envelopes; its :attr:`peer_id` names it on the bus."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        _, self._sodium_secret = nacl.bindings.crypto_sign_seed_keypair(self.private_seed())

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """A deterministic identity from a 32-byte seed (for simulations and tests)."""
        if len(seed) != 32:
            raise KeyFileError(f"an Ed25519 seed has 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @cached_property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self._private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @cached_property
    def peer_id(self) -> PeerId:
        """The libp2p peer id of this key."""
        return PeerId.from_public_key(self.public_key)

    def private_seed(self) -> bytes:
        """The raw 32-byte private seed. Handle with care."""
        return self._private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        signed: bytes = nacl.bindings.crypto_sign(data, self._sodium_secret)
        return signed[:64]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key as unencrypted PKCS#8 PEM to ``path`` with mode 0600.

        The file is created with 0600 from the start (never briefly world-readable) and
        replaced atomically.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = target.with_name(target.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Read a key file written by :meth:`save`.

        Raises :class:`InsecureKeyFile` if group or others can read it, and
        :class:`KeyFileError` if it is missing, corrupt or not an Ed25519 key.
        """
        source = Path(path)
        try:
            mode = source.stat().st_mode
        except FileNotFoundError as exc:
            raise KeyFileError(f"no key file at {source}") from exc
        if stat.S_IMODE(mode) & 0o077:
            raise InsecureKeyFile(
                f"key file {source} has mode {stat.S_IMODE(mode):04o}; run `chmod 600 {source}`"
            )
        try:
            key = serialization.load_pem_private_key(source.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"key file {source} is corrupt or encrypted: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"key file {source} holds a {type(key).__name__}, not Ed25519")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Identity:
        """Load the key at ``path``, or generate and save one if there is none."""
        if Path(path).exists():
            return cls.load(path)
        identity = cls.generate()
        identity.save(path)
        return identity

    def __repr__(self) -> str:
        return f"Identity({self.peer_id.short()})"

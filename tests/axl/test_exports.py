"""Pins the public API of ``axl``: a change here is a deliberate API change."""

from __future__ import annotations

import axl

EXPECTED = {
    "BlobConfig",
    "BlobError",
    "BlobId",
    "BlobNotHeld",
    "BlobProtocolError",
    "BlobStore",
    "BlobUnavailable",
    "BulkStream",
    "BulkTransport",
    "CorruptBlob",
    "InvalidBlobId",
    "PartialBlob",
    "StoreFull",
    "blob_id_of",
    "AxlError",
    "Bus",
    "BusClosed",
    "BusConfig",
    "BusError",
    "Context",
    "Counters",
    "DecodeError",
    "Delivery",
    "DuplicateMessageType",
    "Envelope",
    "ErrorReply",
    "FrameTooLarge",
    "Identity",
    "IdentityError",
    "InboundFrame",
    "InsecureKeyFile",
    "InvalidMessage",
    "InvalidPeerId",
    "KeyFileError",
    "Kind",
    "ListenError",
    "LinkProfile",
    "MemoryNetwork",
    "MemoryTransport",
    "MerkleError",
    "MerkleTree",
    "Message",
    "MessageRegistry",
    "MessageTypeError",
    "MisaddressedFrame",
    "NetworkStats",
    "PeerId",
    "PeerUnreachable",
    "Refusal",
    "RejectedFrame",
    "RemoteError",
    "ReplayError",
    "RequestTimeout",
    "SignatureError",
    "StaleMessage",
    "Subscription",
    "Transport",
    "TransportClosed",
    "UnknownMessageType",
    "VerifiedFrames",
    "default_registry",
    "defer_optional_imports",
    "merkle_depth",
    "merkle_leaf",
    "merkle_parent",
    "merkle_process_proof",
    "merkle_verify",
    "open_bus",
    "verify_signature",
}
OPTIONAL = {"Libp2pTransport", "Libp2pConfig"}


def test_public_names() -> None:
    exported = set(axl.__all__)
    assert exported >= EXPECTED
    assert exported - EXPECTED <= OPTIONAL | {
        name for name in exported if name.startswith("Libp2p")
    }
    for name in exported:
        assert getattr(axl, name) is not None


def test_all_is_sorted_and_unique() -> None:
    assert list(axl.__all__) == sorted(set(axl.__all__))


def test_errors_share_one_root() -> None:
    for name in axl.__all__:
        value = getattr(axl, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, axl.AxlError), name


def test_public_functions_have_docstrings() -> None:
    for name in axl.__all__:
        value = getattr(axl, name)
        if callable(value) and not isinstance(value, type):
            assert value.__doc__, name

"""AXL: the peer-to-peer message bus for autonomous agents.

Public API: identities, typed messages, the bus, and its transports.
"""

from ._blob_id import BlobId, blob_id_of
from ._blob_partial import PartialBlob
from ._blob_serve import BlobConfig
from ._blobs import BlobStore
from ._bus import Bus, BusConfig, Context, Delivery, Subscription, open_bus
from ._deferred_imports import defer_optional_imports
from ._errors import (
    AxlError,
    BlobError,
    BlobNotHeld,
    BlobProtocolError,
    BlobUnavailable,
    BusClosed,
    BusError,
    CorruptBlob,
    DecodeError,
    DuplicateMessageType,
    FrameTooLarge,
    IdentityError,
    InsecureKeyFile,
    InvalidBlobId,
    InvalidMessage,
    InvalidPeerId,
    KeyFileError,
    ListenError,
    MessageTypeError,
    MisaddressedFrame,
    PeerUnreachable,
    RejectedFrame,
    RemoteError,
    ReplayError,
    RequestTimeout,
    SignatureError,
    StaleMessage,
    StoreFull,
    TransportClosed,
    UnknownMessageType,
)
from ._identity import Identity, PeerId, verify_signature
from ._libp2p import Libp2pConfig, Libp2pTransport
from ._libp2p_budget import Refusal
from ._link_profile import LinkProfile
from ._memory import MemoryNetwork, MemoryTransport, NetworkStats
from ._merkle import (
    MerkleError,
    MerkleTree,
    merkle_depth,
    merkle_leaf,
    merkle_parent,
    merkle_process_proof,
    merkle_verify,
)
from ._messages import ErrorReply, Message, MessageRegistry, default_registry
from ._stats import Counters
from ._transport import BulkStream, BulkTransport, InboundFrame, Transport
from ._verified import VerifiedFrames
from ._wire import Envelope, Kind

__all__ = [
    "AxlError",
    "BlobConfig",
    "BlobError",
    "BlobId",
    "BlobNotHeld",
    "BlobProtocolError",
    "BlobStore",
    "BlobUnavailable",
    "BulkStream",
    "BulkTransport",
    "Bus",
    "BusClosed",
    "BusConfig",
    "BusError",
    "Context",
    "CorruptBlob",
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
    "InvalidBlobId",
    "InvalidMessage",
    "InvalidPeerId",
    "KeyFileError",
    "Kind",
    "Libp2pConfig",
    "Libp2pTransport",
    "LinkProfile",
    "ListenError",
    "MemoryNetwork",
    "MemoryTransport",
    "MerkleError",
    "MerkleTree",
    "Message",
    "MessageRegistry",
    "MessageTypeError",
    "MisaddressedFrame",
    "NetworkStats",
    "PartialBlob",
    "PeerId",
    "PeerUnreachable",
    "Refusal",
    "RejectedFrame",
    "RemoteError",
    "ReplayError",
    "RequestTimeout",
    "SignatureError",
    "StaleMessage",
    "StoreFull",
    "Subscription",
    "Transport",
    "TransportClosed",
    "UnknownMessageType",
    "VerifiedFrames",
    "blob_id_of",
    "default_registry",
    "defer_optional_imports",
    "merkle_depth",
    "merkle_leaf",
    "merkle_parent",
    "merkle_process_proof",
    "merkle_verify",
    "open_bus",
    "verify_signature",
]

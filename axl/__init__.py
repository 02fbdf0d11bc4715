"""AXL: the peer-to-peer message bus for autonomous agents.

Public API: identities, typed messages, the bus, and its transports.
"""

from ._bus import Bus, BusConfig, Context, Delivery, Subscription, open_bus
from ._errors import (
    AxlError,
    BusClosed,
    BusError,
    DecodeError,
    DuplicateMessageType,
    FrameTooLarge,
    IdentityError,
    InsecureKeyFile,
    InvalidMessage,
    InvalidPeerId,
    KeyFileError,
    MessageTypeError,
    MisaddressedFrame,
    PeerUnreachable,
    RejectedFrame,
    RemoteError,
    ReplayError,
    RequestTimeout,
    SignatureError,
    StaleMessage,
    TransportClosed,
    UnknownMessageType,
)
from ._identity import Identity, PeerId, verify_signature
from ._libp2p import Libp2pConfig, Libp2pTransport
from ._memory import LinkProfile, MemoryNetwork, MemoryTransport, NetworkStats
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
from ._transport import InboundFrame, Transport
from ._wire import Envelope, Kind

__all__ = [
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
    "Libp2pConfig",
    "Libp2pTransport",
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
    "default_registry",
    "merkle_depth",
    "merkle_leaf",
    "merkle_parent",
    "merkle_process_proof",
    "merkle_verify",
    "open_bus",
    "verify_signature",
]

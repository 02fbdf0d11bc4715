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
    TransportClosed,
    UnknownMessageType,
)
from ._identity import Identity, PeerId, verify_signature
from ._libp2p import Libp2pConfig, Libp2pTransport
from ._libp2p_budget import Refusal
from ._memory import LinkProfile, MemoryNetwork, MemoryTransport, NetworkStats
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
    "ListenError",
    "MemoryNetwork",
    "MemoryTransport",
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
    "default_registry",
    "open_bus",
    "verify_signature",
]

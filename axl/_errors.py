"""The one exception hierarchy of the ``axl`` package.

Every error says what was wrong and, where it helps, what to do about it. Errors raised while
*receiving* a frame are subclasses of :class:`RejectedFrame`; the bus counts and logs them by
their ``reason`` and never lets them escape its receive loop.
"""

from __future__ import annotations


class AxlError(Exception):
    """Base class of every error raised by ``axl``."""


# --- identity -------------------------------------------------------------------------------


class IdentityError(AxlError):
    """A key, key file or peer id is invalid."""


class KeyFileError(IdentityError):
    """A key file is missing, corrupt, or not an Ed25519 private key."""


class InsecureKeyFile(KeyFileError):
    """A key file is readable by group or others; ``chmod 600`` it."""


class InvalidPeerId(IdentityError):
    """A peer id is not a valid base58 Ed25519 libp2p peer id."""


# --- messages -------------------------------------------------------------------------------


class MessageTypeError(AxlError):
    """A message class is declared wrongly (bad tag, duplicate registration)."""


class DuplicateMessageType(MessageTypeError):
    """Two message classes claim the same (tag, version)."""


# --- receiving ------------------------------------------------------------------------------


class RejectedFrame(AxlError):
    """An inbound frame failed a check. ``reason`` is a short stable label used in counters.

    ``envelope`` is the decoded :class:`~axl.Envelope` when the check failed *after* its
    signature was verified (the sender is authenticated and can be answered), else ``None``.
    """

    reason = "rejected"
    envelope: object | None = None


class FrameTooLarge(RejectedFrame):
    """A frame exceeds the size cap (on receive, or raised to a sender before sending)."""

    reason = "too_large"


class DecodeError(RejectedFrame):
    """A frame or payload is not valid msgpack, or does not have the envelope's shape."""

    reason = "decode"


class UnknownMessageType(DecodeError):
    """The envelope names a (type, version) that no registered message class has."""

    reason = "unknown_type"


class InvalidMessage(DecodeError):
    """The payload decoded but failed the message model's validation (field path included)."""

    reason = "invalid_message"


class SignatureError(RejectedFrame):
    """The envelope's signature does not verify against the sender's key."""

    reason = "signature"


class StaleMessage(RejectedFrame):
    """The envelope's timestamp is outside the freshness window (check clocks)."""

    reason = "stale"


class ReplayError(RejectedFrame):
    """An envelope with this sender and message id was already accepted."""

    reason = "replay"


class MisaddressedFrame(RejectedFrame):
    """A direct frame addressed to another peer, or a frame with neither recipient nor topic."""

    reason = "misaddressed"


# --- bus and transports ---------------------------------------------------------------------


class BusError(AxlError):
    """The bus could not do what was asked."""


class BusClosed(BusError):
    """The bus (or its transport) is closed; open a new one."""


class TransportClosed(BusClosed):
    """The transport is closed."""


class ListenError(AxlError, OSError):
    """A transport could not listen on one of its addresses (bad address, port in use)."""


class PeerUnreachable(BusError):
    """No route to the peer: it is unknown, disconnected, or refused the stream."""


class RequestTimeout(BusError, TimeoutError):
    """No reply arrived before the request's timeout."""


class RemoteError(BusError):
    """The peer answered a request with an error (its handler raised, or it has no handler)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"remote error {code}: {detail}")
        self.code = code
        self.detail = detail


# --- blobs ----------------------------------------------------------------------------------


class BlobError(AxlError):
    """A content-addressed blob could not be stored, served or fetched."""


class InvalidBlobId(BlobError):
    """A blob id is malformed (bad text form, chunk size or size out of range)."""


class BlobNotHeld(BlobError):
    """The local store does not hold the blob (never stored, evicted or deleted)."""


class CorruptBlob(BlobError):
    """A stored blob's bytes no longer match its id; the store has dropped it."""


class StoreFull(BlobError):
    """The blob store cannot make room: pinned blobs and reservations fill its budget."""


class BlobProtocolError(BlobError):
    """A bulk stream carried bytes that break the chunk protocol (size, type, layout)."""


class BlobUnavailable(BlobError):
    """A fetch ended without the blob: every holder refused, failed, stalled or was banned.

    ``reasons`` maps each holder to why it was given up.
    """

    def __init__(self, message: str, reasons: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reasons = dict(reasons or {})

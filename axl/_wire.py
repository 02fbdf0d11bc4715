"""The wire format: signed envelopes (see ``docs/wire.md``).

A frame is the msgpack array ``[body, signature]``; ``body`` is itself msgpack bytes of the
envelope fields, and ``signature`` is the sender's Ed25519 signature over
``SIGNING_DOMAIN + body``. Verifying over the received body bytes means no re-encoding and no
canonical-form pitfalls.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

import msgpack

from ._errors import DecodeError
from ._identity import Identity, PeerId

WIRE_VERSION = 1
SIGNING_DOMAIN = b"axl/envelope/v1\x00"
MESSAGE_ID_LENGTH = 16
SIGNATURE_LENGTH = 64
UNSIGNED = bytes(SIGNATURE_LENGTH)
"""The signature field of a trusted-local frame (never a valid Ed25519 signature: libsodium
refuses its small-order ``R``), so such a frame fails verification anywhere it is checked."""
_BODY_FIELDS = 12
_MAX_U64 = 2**64 - 1


class Kind(enum.IntEnum):
    """What an envelope is: a plain message, a request, or a response to one."""

    MESSAGE = 0
    REQUEST = 1
    RESPONSE = 2
    ERROR = 3


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded, not yet verified envelope. ``body`` holds the exact signed bytes."""

    kind: Kind
    type: str
    version: int
    sender: PeerId
    recipient: PeerId | None
    topic: str | None
    message_id: bytes
    reply_to: bytes | None
    timestamp_ms: int
    nonce: int
    payload: bytes
    body: bytes
    signature: bytes

    @property
    def is_response(self) -> bool:
        return self.kind in (Kind.RESPONSE, Kind.ERROR)


def encode_frame(
    identity: Identity,
    *,
    kind: Kind,
    type: str,
    version: int,
    recipient: PeerId | None,
    topic: str | None,
    message_id: bytes,
    reply_to: bytes | None,
    timestamp_ms: int,
    nonce: int,
    payload: bytes,
    signed: bool = True,
) -> bytes:
    """Build and sign a frame. Exactly one of ``recipient`` and ``topic`` must be set.

    ``signed=False`` puts :data:`UNSIGNED` in place of the signature (trusted-local mode only).
    """
    body = encode_body(
        identity.peer_id,
        kind=kind,
        type=type,
        version=version,
        recipient=recipient,
        topic=topic,
        message_id=message_id,
        reply_to=reply_to,
        timestamp_ms=timestamp_ms,
        nonce=nonce,
        payload=payload,
    )
    return seal(body, sign_body(identity, body) if signed else UNSIGNED)


def encode_body(
    sender: PeerId,
    *,
    kind: Kind,
    type: str,
    version: int,
    recipient: PeerId | None,
    topic: str | None,
    message_id: bytes,
    reply_to: bytes | None,
    timestamp_ms: int,
    nonce: int,
    payload: bytes,
) -> bytes:
    """The envelope body, the bytes that are signed (see :func:`encode_frame`)."""
    if (recipient is None) == (topic is None):
        raise ValueError("an envelope has exactly one of recipient and topic")
    body: bytes = msgpack.packb(
        [
            WIRE_VERSION,
            int(kind),
            type,
            version,
            sender.raw,
            recipient.raw if recipient is not None else None,
            topic,
            message_id,
            reply_to,
            timestamp_ms,
            nonce,
            payload,
        ],
        use_bin_type=True,
    )
    return body


def sign_body(identity: Identity, body: bytes) -> bytes:
    """The signature of an envelope body (thread-safe: libsodium, no shared state)."""
    return identity.sign(SIGNING_DOMAIN + body)


def sealed_length(body_length: int) -> int:
    """The length of the frame that seals a body of ``body_length`` bytes (msgpack fixarray,
    bin headers, the fixed-length signature): known before signing."""
    header = 2 if body_length < 1 << 8 else 3 if body_length < 1 << 16 else 5
    return 1 + header + body_length + 2 + SIGNATURE_LENGTH


def seal(body: bytes, signature: bytes) -> bytes:
    """The frame ``[body, signature]``; its length does not depend on the signature's value."""
    frame: bytes = msgpack.packb([body, signature], use_bin_type=True)
    return frame


_FIELD_NAMES = (
    "wire_version", "kind", "type", "version", "sender", "recipient", "topic", "message_id",
    "reply_to", "timestamp_ms", "nonce", "payload",
)  # fmt: skip
_NONE = type(None)
_FIELD_TYPES: tuple[tuple[type, ...], ...] = (
    (int,), (int,), (str,), (int,), (bytes,), (bytes, _NONE), (str, _NONE), (bytes,),
    (bytes, _NONE), (int,), (int,), (bytes,),
)  # fmt: skip
# Every combination of field types the schema allows, so the common case is one set lookup.
_ALLOWED_TYPES = frozenset(itertools.product(*_FIELD_TYPES))
_KINDS = tuple(Kind)


def _wrong_type(fields: list[object]) -> DecodeError:
    for name, value, allowed in zip(_FIELD_NAMES, fields, _FIELD_TYPES, strict=True):
        if type(value) not in allowed:
            return DecodeError(f"envelope field {name} has the wrong type ({type(value).__name__})")
    return DecodeError("envelope fields have the wrong types")  # pragma: no cover


def decode_frame(frame: bytes) -> Envelope:
    """Parse a frame's structure (no signature check). Raises :class:`DecodeError`."""
    try:
        outer = msgpack.unpackb(frame, raw=False, use_list=True)
    except Exception as exc:
        raise DecodeError(f"frame is not msgpack: {exc}") from exc
    if type(outer) is not list or len(outer) != 2:
        raise DecodeError("frame must be a msgpack array [body, signature]")
    body, signature = outer
    if type(body) is not bytes or type(signature) is not bytes:
        raise DecodeError("frame must be a msgpack array of two bin values [body, signature]")
    if len(signature) != SIGNATURE_LENGTH:
        raise DecodeError(f"signature must have {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True)
    except Exception as exc:
        raise DecodeError(f"envelope body is not msgpack: {exc}") from exc
    if type(fields) is not list or len(fields) != _BODY_FIELDS:
        raise DecodeError(f"envelope body must be an array of {_BODY_FIELDS} fields")
    if tuple(map(type, fields)) not in _ALLOWED_TYPES:
        raise _wrong_type(fields)
    (
        wire,
        kind,
        type_,
        version,
        sender,
        recipient,
        topic,
        message_id,
        reply_to,
        ts,
        nonce,
        payload,
    ) = fields
    if wire != WIRE_VERSION:
        raise DecodeError(f"unsupported wire version {wire} (this node speaks {WIRE_VERSION})")
    if not 0 <= kind < len(_KINDS):
        raise DecodeError(f"unknown envelope kind {kind}")
    kind_value = _KINDS[kind]
    if (recipient is None) == (topic is None):
        raise DecodeError("envelope must have exactly one of recipient and topic")
    if len(message_id) != MESSAGE_ID_LENGTH:
        raise DecodeError(f"message_id must have {MESSAGE_ID_LENGTH} bytes")
    if reply_to is not None and len(reply_to) != MESSAGE_ID_LENGTH:
        raise DecodeError(f"reply_to must have {MESSAGE_ID_LENGTH} bytes")
    if (reply_to is not None) != (kind_value in (Kind.RESPONSE, Kind.ERROR)):
        raise DecodeError("reply_to is set exactly on responses")
    if not (0 <= ts <= _MAX_U64 and 0 <= nonce <= _MAX_U64):
        raise DecodeError("timestamp_ms and nonce are unsigned 64-bit integers")
    try:
        sender_id = PeerId(sender)
        recipient_id = PeerId(recipient) if recipient is not None else None
    except Exception as exc:
        raise DecodeError(f"bad peer id in envelope: {exc}") from exc
    return Envelope(
        kind=kind_value,
        type=type_,
        version=version,
        sender=sender_id,
        recipient=recipient_id,
        topic=topic,
        message_id=message_id,
        reply_to=reply_to,
        timestamp_ms=ts,
        nonce=nonce,
        payload=payload,
        body=body,
        signature=signature,
    )

"""The wire format: signed envelopes (see ``docs/wire.md``).

A frame is the msgpack array ``[body, signature]``; ``body`` is itself msgpack bytes of the
envelope fields, and ``signature`` is the sender's Ed25519 signature over
``SIGNING_DOMAIN + body``. Verifying over the received body bytes means no re-encoding and no
canonical-form pitfalls.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgpack

from ._errors import DecodeError
from ._identity import Identity, PeerId

WIRE_VERSION = 1
SIGNING_DOMAIN = b"axl/envelope/v1\x00"
MESSAGE_ID_LENGTH = 16
SIGNATURE_LENGTH = 64
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
) -> bytes:
    """Build and sign a frame. Exactly one of ``recipient`` and ``topic`` must be set."""
    if (recipient is None) == (topic is None):
        raise ValueError("an envelope has exactly one of recipient and topic")
    body: bytes = msgpack.packb(
        [
            WIRE_VERSION,
            int(kind),
            type,
            version,
            identity.peer_id.raw,
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
    signature = identity.sign(SIGNING_DOMAIN + body)
    frame: bytes = msgpack.packb([body, signature], use_bin_type=True)
    return frame


def _expect(value: object, kind: type | tuple[type, ...], field: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DecodeError(f"envelope field {field} has the wrong type ({type(value).__name__})")


def decode_frame(frame: bytes) -> Envelope:
    """Parse a frame's structure (no signature check). Raises :class:`DecodeError`."""
    try:
        outer = msgpack.unpackb(frame, raw=False, use_list=True)
    except Exception as exc:
        raise DecodeError(f"frame is not msgpack: {exc}") from exc
    if not isinstance(outer, list) or len(outer) != 2:
        raise DecodeError("frame must be a msgpack array [body, signature]")
    body, signature = outer
    _expect(body, bytes, "body")
    _expect(signature, bytes, "signature")
    if len(signature) != SIGNATURE_LENGTH:
        raise DecodeError(f"signature must have {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True)
    except Exception as exc:
        raise DecodeError(f"envelope body is not msgpack: {exc}") from exc
    if not isinstance(fields, list) or len(fields) != _BODY_FIELDS:
        raise DecodeError(f"envelope body must be an array of {_BODY_FIELDS} fields")
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
    _expect(wire, int, "wire_version")
    if wire != WIRE_VERSION:
        raise DecodeError(f"unsupported wire version {wire} (this node speaks {WIRE_VERSION})")
    _expect(kind, int, "kind")
    try:
        kind_value = Kind(kind)
    except ValueError:
        raise DecodeError(f"unknown envelope kind {kind}") from None
    _expect(type_, str, "type")
    _expect(version, int, "version")
    _expect(sender, bytes, "sender")
    if recipient is not None:
        _expect(recipient, bytes, "recipient")
    if topic is not None:
        _expect(topic, str, "topic")
    if (recipient is None) == (topic is None):
        raise DecodeError("envelope must have exactly one of recipient and topic")
    _expect(message_id, bytes, "message_id")
    if len(message_id) != MESSAGE_ID_LENGTH:
        raise DecodeError(f"message_id must have {MESSAGE_ID_LENGTH} bytes")
    if reply_to is not None:
        _expect(reply_to, bytes, "reply_to")
        if len(reply_to) != MESSAGE_ID_LENGTH:
            raise DecodeError(f"reply_to must have {MESSAGE_ID_LENGTH} bytes")
    if (reply_to is not None) != (kind_value in (Kind.RESPONSE, Kind.ERROR)):
        raise DecodeError("reply_to is set exactly on responses")
    _expect(ts, int, "timestamp_ms")
    _expect(nonce, int, "nonce")
    if not (0 <= ts <= _MAX_U64 and 0 <= nonce <= _MAX_U64):
        raise DecodeError("timestamp_ms and nonce are unsigned 64-bit integers")
    _expect(payload, bytes, "payload")
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

"""Frames built by hand for tests that feed a transport or a bus directly: a fresh message id,
the current time and version 1, the rest as the test names it."""

from __future__ import annotations

import os
import time

from axl import Identity, Message, PeerId
from axl._wire import Kind, encode_frame


def frame_of(
    sender: Identity,
    message: Message,
    n: int,
    *,
    kind: Kind = Kind.MESSAGE,
    recipient: PeerId | None = None,
    topic: str | None = None,
    tag: str = "",
    signed: bool = True,
) -> bytes:
    """``message`` in a frame from ``sender`` with nonce ``n``, to ``recipient`` or on
    ``topic`` (exactly one); ``tag`` overrides the message's type tag and ``signed=False``
    leaves the signature out, as an attacker may."""
    return encode_frame(
        sender,
        kind=kind,
        type=tag or message.axl_tag,
        version=1,
        recipient=recipient,
        topic=topic,
        message_id=os.urandom(16),
        reply_to=None,
        timestamp_ms=int(time.time() * 1000),
        nonce=n,
        payload=message.encode_payload(),
        signed=signed,
    )

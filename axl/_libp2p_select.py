"""Opening a link stream in one round trip: multistream-select with the header and the
protocol proposal in one write, as go-multistream's ``SelectProtoOrFail`` does.

py-libp2p's client writes ``/multistream/1.0.0``, waits for the other side's header, then
writes the protocol and waits for its echo: two round trips before the first frame. Here both
messages leave in one write and both answers are read after it; the responder (any
multistream-select 1.0 implementation, py-libp2p's included) reads them as it always did,
one message at a time. Used for AXL's own ``/axl/1.0.0`` link streams only (the one protocol
every AXL node serves); the host's other streams negotiate the py-libp2p way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import PeerUnreachable

if TYPE_CHECKING:
    from libp2p.abc import INetStream

MULTISTREAM = b"/multistream/1.0.0"
NOT_AVAILABLE = b"na"
MAX_ANSWER = 1024
"""Longest answer read (a protocol id); a longer length prefix ends the negotiation."""


class ProtocolRefused(PeerUnreachable):
    """The peer answered ``na``: it does not serve the protocol (its connection is fine)."""


async def read_answer(stream: Any) -> bytes:
    """One multistream-select message from ``stream``, without its newline (py-libp2p's
    ``read_delim`` with a bound on the length). Raises :class:`PeerUnreachable` for a
    malformed or oversized message, or when the stream ends first."""
    from libp2p.exceptions import BaseLibp2pError
    from libp2p.io.utils import read_exactly
    from libp2p.utils.varint import decode_uvarint_from_stream

    try:
        length = await decode_uvarint_from_stream(stream)
        if not 0 < length <= MAX_ANSWER:
            raise PeerUnreachable(f"multistream-select: an answer of {length} bytes")
        body = await read_exactly(stream, length)
    except BaseLibp2pError as exc:  # malformed, the stream ended or was reset
        raise PeerUnreachable(f"multistream-select failed: {exc!r}") from exc
    if not body.endswith(b"\n"):
        raise PeerUnreachable("multistream-select: an answer without its newline")
    return body[:-1]


async def select(stream: INetStream, protocol: str) -> None:
    """Negotiate ``protocol`` on the fresh ``stream`` in one round trip (see above). Raises
    :class:`PeerUnreachable` when the peer refuses it or answers out of protocol; the caller
    resets the stream then."""
    from libp2p.custom_types import TProtocol
    from libp2p.utils.varint import encode_delim

    proposal = protocol.encode()
    await stream.write(encode_delim(MULTISTREAM) + encode_delim(proposal))
    header = await read_answer(stream)
    if header != MULTISTREAM:
        raise PeerUnreachable(f"multistream-select: unexpected header {header[:64]!r}")
    answer = await read_answer(stream)
    if answer == NOT_AVAILABLE:
        raise ProtocolRefused(f"the peer does not serve {protocol}")
    if answer != proposal:
        raise PeerUnreachable(f"multistream-select: unexpected answer {answer[:64]!r}")
    stream.set_protocol(TProtocol(protocol))

"""Opening a stream in one round trip: multistream-select with the header and the protocol
proposal in one write, as go-multistream's ``SelectProtoOrFail`` does.

py-libp2p's client writes ``/multistream/1.0.0``, waits for the other side's header, then
writes the protocol and waits for its echo: two round trips, two frames each way, and two
wake-ups per stream before the first byte of payload. Every DHT query, every first request to
a peer and every peer-list fetch opens a stream. Here the two messages leave in one write and
both answers are read after it; the responder (any multistream-select 1.0 implementation,
py-libp2p's included) reads them as it always did. Only the first protocol is pipelined: when
it is refused (``na``), the others are tried one by one as py-libp2p does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_PipelinedClient: type[Any] | None = None


def pipelined_client() -> Any:
    """A multistream-select client for a host's ``multiselect_client``."""
    global _PipelinedClient
    if _PipelinedClient is None:
        _PipelinedClient = _build_class()
    return _PipelinedClient()


def _build_class() -> type[Any]:
    import trio
    from libp2p.custom_types import TProtocol
    from libp2p.io.exceptions import IOException
    from libp2p.protocol_muxer.exceptions import (
        MultiselectClientError,
        MultiselectCommunicatorError,
        ProtocolNotSupportedError,
    )
    from libp2p.protocol_muxer.multiselect_client import (
        DEFAULT_NEGOTIATE_TIMEOUT,
        MULTISELECT_PROTOCOL_ID,
        PROTOCOL_NOT_FOUND_MSG,
        MultiselectClient,
        is_valid_handshake,
    )
    from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
    from libp2p.utils.varint import encode_delim

    header = encode_delim(MULTISELECT_PROTOCOL_ID.encode())

    class PipelinedMultiselectClient(MultiselectClient):
        """py-libp2p's client, selecting the first protocol in one round trip."""

        async def select_one_of(
            self,
            protocols: Sequence[TProtocol],
            communicator: Any,
            negotiate_timeout: int = DEFAULT_NEGOTIATE_TIMEOUT,
        ) -> TProtocol:
            if not protocols or type(communicator) is not MultiselectCommunicator:
                return await super().select_one_of(protocols, communicator, negotiate_timeout)
            first = protocols[0]
            proposal = first if first is not None else ""
            with trio.move_on_after(negotiate_timeout):
                try:
                    await communicator.read_writer.write(header + encode_delim(proposal.encode()))
                except (IOException, AssertionError, ValueError) as error:
                    raise MultiselectClientError(f"handshake write failed: {error}") from error
                try:
                    theirs = await communicator.read()
                    if not is_valid_handshake(theirs):
                        raise MultiselectClientError(
                            f"multiselect protocol ID mismatch: got {theirs!r}"
                        )
                    response = await communicator.read()
                except MultiselectCommunicatorError as error:
                    raise MultiselectClientError(f"negotiation read failed: {error}") from error
                if response == proposal:
                    return first
                if response == MULTISELECT_PROTOCOL_ID:  # the other side restarted: again
                    await self.handshake(communicator)
                    return await self.try_select(communicator, first)
                if response != PROTOCOL_NOT_FOUND_MSG:
                    raise MultiselectClientError(
                        f"unrecognized response: {response!r}, expected {proposal!r}"
                    )
                refused = [f"protocol not supported: {first}"]
                for protocol in protocols[1:]:
                    try:
                        return await self.try_select(communicator, protocol)
                    except ProtocolNotSupportedError as error:
                        refused.append(str(error))
                raise MultiselectClientError(
                    f"no protocol of {list(protocols)} supported: {'; '.join(refused)}"
                )
            raise MultiselectClientError(
                f"response timed out after {negotiate_timeout}s, protocols: {list(protocols)}"
            )

    return PipelinedMultiselectClient

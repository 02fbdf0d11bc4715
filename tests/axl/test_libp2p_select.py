"""Link streams negotiate ``/axl/1.0.0`` in one round trip (header and proposal in one write),
against py-libp2p's own multistream-select responder; a refusal or an answer out of protocol
is a typed :class:`PeerUnreachable`, never a hang or an untyped error."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.utils.varint import encode_delim

from axl import Identity, Libp2pConfig, Libp2pTransport, PeerUnreachable
from axl._libp2p_config import PROTOCOL_ID
from axl._libp2p_select import MAX_ANSWER, MULTISTREAM, read_answer, select

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0)
A, B = (Identity.from_seed(bytes([0x6A + i]) * 32) for i in range(2))


class ScriptedStream:
    """A stream whose peer's bytes are given up front; records what is written and the
    protocol set."""

    def __init__(self, incoming: bytes) -> None:
        self.incoming = incoming
        self.written: list[bytes] = []
        self.protocol: str | None = None

    async def write(self, data: bytes) -> None:
        self.written.append(data)

    async def read(self, n: int = -1) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self.incoming:
            from libp2p.network.stream.exceptions import StreamEOF

            raise StreamEOF("ended")
        chunk, self.incoming = self.incoming[:n], self.incoming[n:]
        return chunk

    def set_protocol(self, protocol: str) -> None:
        self.protocol = protocol


async def test_header_and_proposal_leave_in_one_write_and_the_echo_selects() -> None:
    proposal = PROTOCOL_ID.encode()
    stream = ScriptedStream(encode_delim(MULTISTREAM) + encode_delim(proposal) + b"frames")
    await select(stream, PROTOCOL_ID)  # type: ignore[arg-type]
    assert stream.written == [encode_delim(MULTISTREAM) + encode_delim(proposal)]
    assert stream.protocol == PROTOCOL_ID
    assert stream.incoming == b"frames"  # nothing read past the echo


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (encode_delim(MULTISTREAM) + encode_delim(b"na"), "does not serve"),  # ProtocolRefused
        (encode_delim(MULTISTREAM) + encode_delim(b"/other/1.0.0"), "unexpected answer"),
        (encode_delim(b"/multistream/2.0.0"), "unexpected header"),
        (encode_delim(MULTISTREAM), "select failed"),
        (b"", "select failed"),
        (encode_delim(MULTISTREAM) + b"\x05na\nXY", "without its newline"),
        (bytes([0x80 + 1]) + bytes([MAX_ANSWER // 128 + 1]) + b"x" * 2000, "bytes"),
        (b"\xff" * 60, "select failed"),  # a varint past 64 bits (2**300 and up)
    ],
)
async def test_a_refusal_or_an_answer_out_of_protocol_is_peer_unreachable(
    answer: bytes, why: str
) -> None:
    stream = ScriptedStream(answer)
    with trio.fail_after(2), pytest.raises(PeerUnreachable, match=why):
        await select(stream, PROTOCOL_ID)  # type: ignore[arg-type]
    assert stream.protocol is None


async def test_an_oversized_answer_is_refused_before_its_body_is_read() -> None:
    huge = encode_delim(b"x" * (MAX_ANSWER * 4))
    stream = ScriptedStream(huge)
    with pytest.raises(PeerUnreachable, match="bytes"):
        await read_answer(stream)
    assert len(stream.incoming) > MAX_ANSWER * 4 - 8  # only the length prefix was read


async def test_a_refusing_peer_is_unreachable_and_keeps_its_connection() -> None:
    async with AsyncExitStack() as stack:
        ta = await stack.enter_async_context(Libp2pTransport.open(A, config=CONFIG))
        tb = await stack.enter_async_context(
            Libp2pTransport.open(B, bootstrap=ta.listen_addrs, config=CONFIG)
        )
        host = ta._check_open()  # A no longer serves /axl/1.0.0
        host.remove_stream_handler(PROTOCOL_ID)  # type: ignore[arg-type]
        network = tb._check_open().get_network()
        a_id = ID(A.peer_id.raw)
        with trio.fail_after(10):
            while not network.connections.get(a_id):
                await trio.sleep(0.01)
        before = list(network.connections[a_id])
        with trio.fail_after(10), pytest.raises(PeerUnreachable, match="does not serve"):
            await tb.send(A.peer_id, b"frame")
        assert tb.stats["links.dial_failed"] == 1
        assert list(network.connections.get(a_id, [])) == before  # the same connection kept
        with pytest.raises(PeerUnreachable, match="next dial"):
            await tb.send(A.peer_id, b"frame")


async def test_a_link_stream_is_negotiated_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The link's stream goes through :func:`select`: header and proposal in one write, and
    the frames after it arrive."""
    import axl._libp2p_links as links

    proposals: list[bytes] = []

    async def recording_select(stream: object, protocol: str) -> None:
        write = stream.write  # type: ignore[attr-defined]

        async def first_write(data: bytes) -> None:
            proposals.append(data)
            stream.write = write  # type: ignore[attr-defined]
            await write(data)

        stream.write = first_write  # type: ignore[attr-defined]
        await select(stream, protocol)  # type: ignore[arg-type]

    monkeypatch.setattr(links, "select", recording_select)
    async with AsyncExitStack() as stack:
        ta = await stack.enter_async_context(Libp2pTransport.open(A, config=CONFIG))
        tb = await stack.enter_async_context(
            Libp2pTransport.open(B, bootstrap=ta.listen_addrs, config=CONFIG)
        )
        await tb.send(A.peer_id, b"frame one")
        with trio.fail_after(10):
            got = await ta.receive_batch(8)
        assert [inbound.frame for inbound in got] == [b"frame one"]
        assert proposals == [encode_delim(MULTISTREAM) + encode_delim(PROTOCOL_ID.encode())]

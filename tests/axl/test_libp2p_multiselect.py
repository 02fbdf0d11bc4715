"""Streams opened in one round trip (:mod:`axl._libp2p_multiselect`): the header and the
protocol proposal leave in one write, a stock py-libp2p host answers them as before, a refused
first protocol falls back to the next, and a wrong answer is an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from axl import Identity, Libp2pConfig, Libp2pTransport
from axl._libp2p_multiselect import pipelined_client

CONFIG = Libp2pConfig(gossip_heartbeat=0.2, dial_timeout=3.0, peer_exchange=False)
ECHO = "/test/echo/1.0.0"


class Scripted:
    """A stream that records writes and answers reads from a script (no network)."""

    def __init__(self, answers: bytes) -> None:
        self.writes: list[bytes] = []
        self._answers = answers

    async def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def read(self, n: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        size = len(self._answers) if n is None else n
        chunk, self._answers = self._answers[:size], self._answers[size:]
        return chunk

    async def close(self) -> None:
        pass


def _rwc(stream: Scripted) -> Any:
    return stream  # duck-typed as py-libp2p's ReadWriteCloser


def _delim(text: str) -> bytes:
    from libp2p.utils.varint import encode_delim

    return encode_delim(text.encode())


async def test_the_header_and_the_proposal_leave_in_one_write() -> None:
    from libp2p.custom_types import TProtocol
    from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator

    stream = Scripted(_delim("/multistream/1.0.0") + _delim(ECHO))
    chosen = await pipelined_client().select_one_of(
        [TProtocol(ECHO)], MultiselectCommunicator(_rwc(stream))
    )
    assert chosen == ECHO
    assert stream.writes == [_delim("/multistream/1.0.0") + _delim(ECHO)]


async def test_a_refused_first_protocol_falls_back_and_a_wrong_answer_fails() -> None:
    from libp2p.custom_types import TProtocol
    from libp2p.protocol_muxer.exceptions import MultiselectClientError
    from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator

    header = _delim("/multistream/1.0.0")
    stream = Scripted(header + _delim("na") + _delim(ECHO))
    protocols = [TProtocol("/test/nope/1.0.0"), TProtocol(ECHO)]
    chosen = await pipelined_client().select_one_of(
        protocols, MultiselectCommunicator(_rwc(stream))
    )
    assert chosen == ECHO
    assert stream.writes[1:] == [_delim(ECHO)]
    for answers in (
        header + _delim("/test/other/1.0.0"),  # neither our proposal nor "na"
        _delim("/not-multistream/9") + _delim(ECHO),  # a wrong header
        header + _delim("na"),  # the only protocol refused
        header,  # the stream ends before the answer
    ):
        with pytest.raises(MultiselectClientError):
            await pipelined_client().select_one_of(
                [TProtocol(ECHO)], MultiselectCommunicator(_rwc(Scripted(answers)))
            )


@asynccontextmanager
async def stock_echo_host() -> AsyncIterator[Any]:
    """A stock py-libp2p host serving ``ECHO`` (and nothing of ours)."""
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol

    host = new_host(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])

    async def echo(stream: Any) -> None:
        data = await stream.read(100)
        await stream.write(data)
        await stream.close()

    host.set_stream_handler(TProtocol(ECHO), echo)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        yield host


async def test_streams_to_a_stock_py_libp2p_host_open_and_carry_data() -> None:
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import PeerInfo

    async with (
        stock_echo_host() as stock,
        Libp2pTransport.open(Identity.from_seed(b"\x51" * 32), config=CONFIG) as ours,
    ):
        host: Any = ours._host
        assert host is not None
        assert type(host.multiselect_client).__name__ == "PipelinedMultiselectClient"
        await host.connect(PeerInfo(stock.get_id(), stock.get_addrs()))
        for protocols in ([ECHO], ["/test/nope/1.0.0", ECHO]):
            with trio.fail_after(10):
                stream = await host.new_stream(stock.get_id(), [TProtocol(p) for p in protocols])
                await stream.write(b"ping")
                assert await stream.read(100) == b"ping"
        with trio.fail_after(10), pytest.raises(Exception):  # noqa: B017 - py-libp2p's error
            await host.new_stream(stock.get_id(), [TProtocol("/test/nope/1.0.0")])

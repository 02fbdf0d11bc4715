"""Lean Noise sessions (``axl/_libp2p_noise.py``): the same bytes on the wire as py-libp2p's,
interoperating with a stock py-libp2p Noise peer over a real socket, in both directions;
tampered or truncated traffic ends the session with py-libp2p's own exception types."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from noise.exceptions import NoiseInvalidMessage  # type: ignore[import-untyped]

from axl._libp2p_noise import MAX_PLAINTEXT, TransportCipher, lean_session_class


def stock_cipher(key: bytes) -> Any:
    """The noiseprotocol package's CipherState, as py-libp2p's Noise session uses it."""
    from noise.connection import NoiseConnection  # type: ignore[import-untyped]
    from noise.state import CipherState  # type: ignore[import-untyped]

    protocol = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256").noise_protocol
    state = CipherState(protocol)
    state.initialize_key(key)
    return state


def test_sealed_messages_are_byte_identical_to_noiseprotocols() -> None:
    key = os.urandom(32)
    ours, stock = TransportCipher(key), stock_cipher(key)
    for size in (0, 1, 100, 5000, MAX_PLAINTEXT):
        plaintext = os.urandom(size)
        body = stock.encrypt_with_ad(None, plaintext)
        assert ours.seal(plaintext) == len(body).to_bytes(2, "big") + body
    assert ours.nonce == stock.n == 5


def test_a_large_write_is_split_as_py_libp2p_splits_it_and_reassembled() -> None:
    key = os.urandom(32)
    sender, stock, receiver = TransportCipher(key), stock_cipher(key), TransportCipher(key)
    plaintext = os.urandom(2 * MAX_PLAINTEXT + 10)
    wire = sender.seal(plaintext)
    expected = b""
    for start in range(0, len(plaintext), MAX_PLAINTEXT):
        body = stock.encrypt_with_ad(None, plaintext[start : start + MAX_PLAINTEXT])
        expected += len(body).to_bytes(2, "big") + body
    assert wire == expected
    got: list[bytes] = []
    for start in range(0, len(wire), 777):  # arbitrary socket chunks
        got += receiver.feed(wire[start : start + 777])
    assert [len(part) for part in got] == [MAX_PLAINTEXT, MAX_PLAINTEXT, 10]
    assert b"".join(got) == plaintext
    assert receiver.buffered == 0


def test_a_tampered_or_replayed_message_fails_and_the_opener_stays_failed() -> None:
    key = os.urandom(32)
    sender = TransportCipher(key)
    first, second = sender.seal(b"one"), sender.seal(b"two")
    receiver = TransportCipher(key)
    assert receiver.feed(first) == [b"one"]
    with pytest.raises(NoiseInvalidMessage):
        receiver.feed(first)  # a replay: wrong nonce
    assert receiver.failed
    with pytest.raises(NoiseInvalidMessage):
        receiver.feed(second)  # even genuine traffic: the session is over
    flipped = bytearray(TransportCipher(key).seal(b"one"))
    flipped[5] ^= 1
    with pytest.raises(NoiseInvalidMessage):
        TransportCipher(key).feed(bytes(flipped))


_PAIRS: list[socket.socket] = []
"""The sockets of the pairs the running test made, closed when it ends."""


@pytest.fixture(autouse=True)
def close_socket_pairs() -> Iterator[None]:
    """Close the socket pairs a test made: sessions a test leaves open warned (an unclosed
    socket's ``ResourceWarning``) whenever the garbage collector found them, in some later
    test. Modules that use :func:`handshake` import this fixture."""
    yield
    while _PAIRS:
        _PAIRS.pop().close()


async def socket_pair() -> tuple[Any, Any]:
    from libp2p.io.trio import TrioTCPStream
    from libp2p.network.connection.raw_connection import RawConnection

    plain = socket.socketpair()
    _PAIRS.extend(plain)  # closed after the test, when trio no longer watches them
    a, b = (trio.socket.from_stdlib_socket(one) for one in plain)
    return (
        RawConnection(TrioTCPStream(trio.SocketStream(a)), initiator=True),
        RawConnection(TrioTCPStream(trio.SocketStream(b)), initiator=False),
    )


async def handshake(lean_dialer: bool, lean_listener: bool) -> tuple[Any, Any]:
    """A Noise XX handshake over a socket pair; each side lean or py-libp2p's stock."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
    from libp2p.peer.id import ID
    from libp2p.security.noise.transport import Transport

    from axl._libp2p_noise import noise_transport_class

    def transport(lean_one: bool) -> Any:
        keys = create_new_key_pair()
        cls = noise_transport_class() if lean_one else Transport
        return cls(keys, noise_privkey=x25519_key_pair().private_key), ID.from_pubkey(
            keys.public_key
        )

    (dialer, _), (listener, listener_id) = transport(lean_dialer), transport(lean_listener)
    raw_a, raw_b = await socket_pair()
    sessions: dict[str, Any] = {}

    async def inbound() -> None:
        sessions["listener"] = await listener.secure_inbound(raw_b)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbound)
        sessions["dialer"] = await dialer.secure_outbound(raw_a, listener_id)
    return sessions["dialer"], sessions["listener"]


@pytest.mark.parametrize(("lean_dialer", "lean_listener"), [(True, False), (False, True)])
async def test_lean_and_stock_sessions_talk_both_ways(
    lean_dialer: bool, lean_listener: bool
) -> None:
    dialer, listener = await handshake(lean_dialer, lean_listener)
    lean_cls = lean_session_class()
    assert isinstance(dialer, lean_cls) == lean_dialer
    assert isinstance(listener, lean_cls) == lean_listener
    assert dialer.remote_peer == listener.local_peer
    big = os.urandom(3 * MAX_PLAINTEXT)
    small = [os.urandom(n) for n in (12, 1, 300, 12, 40)]
    for writer, reader in ((dialer, listener), (listener, dialer)):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.write, big)
            assert await reader.read(len(big)) == big
        for part in small:
            await writer.write(part)
        # yamux-like reads: header-sized then body-sized, across message boundaries
        got = b"".join([await reader.read(n) for n in (12, 1, 100, 200, 12, 40)])
        assert got == b"".join(small)
        await writer.write(b"tail")
        assert await reader.read(None) == b"tail"
        assert await reader.read(0) == b""


async def test_end_of_stream_is_a_clean_incomplete_read_as_in_py_libp2p() -> None:
    from libp2p.io.exceptions import IncompleteReadError

    dialer, listener = await handshake(True, True)
    await dialer.write(b"last")
    await dialer.close()
    assert await listener.read(4) == b"last"
    with pytest.raises(IncompleteReadError) as caught:
        await listener.read(12)
    assert caught.value.is_clean_close


async def test_a_tampered_message_on_the_wire_ends_the_session() -> None:
    dialer, listener = await handshake(True, True)
    sealed = bytearray(dialer.send.seal(b"hello"))
    sealed[-1] ^= 1
    await dialer.raw.write(bytes(sealed))
    with pytest.raises(NoiseInvalidMessage):
        await listener.read(5)
    await dialer.write(b"again")
    with pytest.raises(NoiseInvalidMessage):
        await listener.read(5)


async def test_a_cancelled_write_consumes_no_nonce() -> None:
    """A writer cancelled before its message leaves must not seal it: a sealed message never
    sent puts the two sides' nonces out of step and the connection dies."""
    dialer, listener = await handshake(True, True)
    with trio.CancelScope() as scope:
        scope.cancel()
        await dialer.write(b"never sent")
    assert scope.cancelled_caught
    await dialer.write(b"sent")
    assert await listener.read(4) == b"sent"


# -- fill: the yamux reader's socket read, straight on the socket ------------------------------


async def test_fill_reads_what_the_tcp_read_ahead_held_first_then_the_socket() -> None:
    """Bytes the TCP read-ahead took before the session read the socket itself (the start of
    a message) come first; the rest of that message and the next come from the socket."""
    dialer, listener = await handshake(True, True)
    first, second = os.urandom(300), os.urandom(5000)
    await dialer.write(first)
    await dialer.write(second)
    tcp = listener.raw.stream
    sock = tcp.stream.socket
    tcp._axl_ahead = bytearray(await sock.recv(100))  # as the read-ahead would leave them
    got = b""
    with trio.fail_after(5):
        while len(got) < len(first) + len(second):
            await listener.fill()
            got += listener.take_buffered(len(listener._plain)) or b""
    assert got == first + second
    assert listener._socket is sock._sock  # it read the socket directly


async def test_fill_at_the_end_of_the_stream_is_a_clean_incomplete_read() -> None:
    from libp2p.io.exceptions import IncompleteReadError

    dialer, listener = await handshake(True, True)
    await dialer.write(b"last")
    await dialer.close()
    await listener.fill()
    assert listener.take_buffered(4) == b"last"
    with pytest.raises(IncompleteReadError) as caught:
        await listener.fill()
    assert caught.value.is_clean_close


async def test_a_fill_cancelled_while_waiting_loses_nothing() -> None:
    dialer, listener = await handshake(True, True)
    with trio.move_on_after(0.05) as scope:
        await listener.fill()  # nothing to read: waits, then is cancelled
    assert scope.cancelled_caught
    await dialer.write(b"after")
    with trio.fail_after(5):
        while listener.take_buffered(5) is None:
            await listener.fill()
    await dialer.write(b"more")
    with trio.fail_after(5):
        while (data := listener.take_buffered(4)) is None:
            await listener.fill()
    assert data == b"more"

"""Noise transport messages without py-libp2p's per-message layering; same bytes on the wire.

After the Noise XX handshake, py-libp2p moves every transport message through its
``SecureSession`` (a ``BytesIO`` refilled per message), ``NoiseTransportReadWriter`` (three
debug f-strings per read), msgio's length reader (``read_exactly`` of 2 bytes, then of the
body, each a trip through the raw connection), and the ``noiseprotocol`` package's
``NoiseConnection`` → ``CipherState`` → ``Cipher`` wrappers around one ChaCha20-Poly1305 call.
Yamux then reads each frame from the session in two reads (its 12-byte header, its body).

Here the handshake is py-libp2p's, unchanged; the session it returns is swapped for a
:class:`LeanNoiseSession` holding the two cipher states' keys and nonces:

* :class:`TransportCipher` (no IO) seals and opens Noise transport messages the way the Noise
  spec and go-libp2p frame them: a 2-byte big-endian length, then ChaCha20-Poly1305 of at most
  65,519 bytes of plaintext with empty associated data and the nonce ``0⁴ ‖ n`` (little-endian
  64-bit counter). Sealing splits larger writes as py-libp2p does; all of a write's messages go
  out in one socket write. Opening reassembles messages from whatever bytes a socket read
  returned; a message that fails authentication kills the session (``NoiseInvalidMessage``,
  as py-libp2p raises), and the nonce only advances on success.
* :class:`LeanNoiseSession` reads up to 64 KiB from the raw connection at once, decrypts every
  complete message into one plaintext buffer, and serves yamux's small reads from it without
  another await that could block. End of stream raises ``IncompleteReadError`` as py-libp2p's
  reader does (``received_bytes`` 0 at a message boundary: a clean close).

Anything but ChaCha20-Poly1305 (the only cipher libp2p's Noise uses) keeps py-libp2p's session.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from libp2p.abc import IRawConnection, ISecureConn
    from libp2p.peer.id import ID

MAX_MESSAGE = 65535
"""Largest Noise transport message (the 2-byte length prefix)."""
TAG = 16
MAX_PLAINTEXT = MAX_MESSAGE - TAG
MAX_NONCE = 2**64 - 1
READ_SIZE = 1 << 16
YIELD_EVERY = 64
"""Reads served from the plaintext buffer between two checkpoints."""
_NONCE = struct.Struct("<4xQ")
_LENGTH = struct.Struct(">H")


class TransportCipher:
    """One direction's Noise ``CipherState`` (ChaCha20-Poly1305) with the libp2p framing; no IO.

    ``seal`` turns plaintext into framed transport messages; ``feed`` takes received bytes and
    returns the plaintext of every message they complete. A failed authentication raises
    ``noise.exceptions.NoiseInvalidMessage`` and leaves the opener unusable.
    """

    def __init__(self, key: bytes, nonce: int = 0) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        if len(key) != 32:
            raise ValueError("a ChaCha20-Poly1305 key has 32 bytes")
        self._aead = ChaCha20Poly1305(key)
        self.nonce = nonce
        self._buffer = bytearray()
        self.failed = False

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message."""
        return len(self._buffer)

    def _next_nonce(self) -> bytes:
        if self.nonce >= MAX_NONCE:
            from noise.exceptions import NoiseMaxNonceError  # type: ignore[import-untyped]

            raise NoiseMaxNonceError("Nonce has depleted!")
        return _NONCE.pack(self.nonce)

    def seal(self, plaintext: bytes) -> bytes:
        """``plaintext`` as framed transport messages of at most 65,519 plaintext bytes each."""
        encrypt = self._aead.encrypt
        if len(plaintext) <= MAX_PLAINTEXT:
            sealed = encrypt(self._next_nonce(), plaintext, None)
            self.nonce += 1
            return _LENGTH.pack(len(sealed)) + sealed
        parts: list[bytes] = []
        view = memoryview(plaintext)
        for start in range(0, len(plaintext), MAX_PLAINTEXT):
            sealed = encrypt(self._next_nonce(), bytes(view[start : start + MAX_PLAINTEXT]), None)
            self.nonce += 1
            parts.append(_LENGTH.pack(len(sealed)))
            parts.append(sealed)
        return b"".join(parts)

    def open(self, message: bytes) -> bytes:
        """One transport message's plaintext (``message`` without its length prefix)."""
        # The exception classes are imported where they are needed, not per call: this runs
        # for every transport message received, and an import statement is a call into the
        # import system each time (the `axl` command's deferring __import__ included).
        if self.failed:
            raise _invalid("the session already failed authentication")
        try:
            plaintext = self._aead.decrypt(self._next_nonce(), message, None)
        except Exception as exc:
            from cryptography.exceptions import InvalidTag

            if not isinstance(exc, InvalidTag):
                raise
            self.failed = True
            raise _invalid("Failed authentication of message") from None
        self.nonce += 1
        return plaintext

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the plaintext of every message they complete, in order."""
        buffer = self._buffer
        if buffer:
            buffer += data
            view: bytes | bytearray = buffer
        else:
            view = data
        out: list[bytes] = []
        offset, end = 0, len(view)
        while end - offset >= 2:
            (length,) = _LENGTH.unpack_from(view, offset)
            start = offset + 2
            if end - start < length:
                break
            out.append(self.open(bytes(view[start : start + length])))
            offset = start + length
        if view is buffer:
            del buffer[:offset]
        elif offset < end:
            buffer += memoryview(data)[offset:]
        return out


def lean_session_class() -> type[Any]:
    """The :class:`LeanNoiseSession` class (built lazily: libp2p imports slowly)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = _build_session()
    return _SESSION


_SESSION: type[Any] | None = None
_UNRESOLVED = object()


def _direct_socket(raw: Any) -> Any:
    """The stdlib socket under ``raw`` when it is a py-libp2p ``RawConnection`` over a
    ``TrioTCPStream`` over a trio ``SocketStream`` (the only reader of that socket is the
    session's), else None."""
    import trio
    from libp2p.io.trio import TrioTCPStream
    from libp2p.network.connection.raw_connection import RawConnection

    if type(raw) is not RawConnection or type(raw.stream) is not TrioTCPStream:
        return None
    stream = raw.stream.stream
    if not isinstance(stream, trio.SocketStream):
        return None
    trio_socket: Any = stream.socket
    return trio_socket._sock


def _build_session() -> type[Any]:
    import trio
    from libp2p.io.exceptions import IncompleteReadError
    from libp2p.security.secure_session import SecureSession

    class LeanNoiseSession(SecureSession):
        """py-libp2p's ``SecureSession`` with reads and writes done by :class:`TransportCipher`
        straight on the raw connection (everything else — peer ids, addresses — inherited)."""

        def __init__(
            self, *, raw: IRawConnection, send: TransportCipher, receive: TransportCipher, **kw: Any
        ) -> None:
            super().__init__(**kw)
            self.raw = raw
            self.send = send
            self.receive = receive
            self._plain = bytearray()
            self._served = 0  # reads served from the buffer since the last yield
            self._direct: Any = _UNRESOLVED  # the socket for :meth:`fill`, found at first use

        def take_buffered(self, n: int) -> bytes | None:
            """``n`` plaintext bytes if that many are buffered (no await), else None."""
            plain = self._plain
            if len(plain) < n:
                return None
            data = bytes(plain[:n])
            del plain[:n]
            return data

        async def fill(self) -> None:
            """Read the socket once (waiting for it to be readable only when it has nothing)
            and add the plaintext of every Noise message that completes to the buffer
            (:meth:`take_buffered`). Straight on the TCP socket when the connection is a
            py-libp2p TCP stream over a trio socket (else through the raw connection);
            IncompleteReadError at the end of the stream, OSError when it broke."""
            sock = self._socket
            if sock is None:
                await self._receive_more()
                return
            await trio.lowlevel.checkpoint_if_cancelled()
            raw: Any = self.raw
            ahead: bytearray | None = getattr(raw.stream, "_axl_ahead", None)
            if ahead:  # bytes the TCP read-ahead took before we read the socket directly
                data = bytes(ahead)
                ahead.clear()
            else:
                try:
                    data = sock.recv(READ_SIZE)
                except BlockingIOError:
                    while True:  # nothing there: wait (a cancellation here loses nothing)
                        await trio.lowlevel.wait_readable(sock)
                        try:
                            data = sock.recv(READ_SIZE)
                        except BlockingIOError:
                            continue  # woken without data: wait again
                        self._decrypt(data)
                        return
            # Taken without waiting: one yield per read, as trio's own recv, after the bytes
            # are safely buffered (a cancellation at that yield loses nothing).
            self._decrypt(data)
            await trio.lowlevel.cancel_shielded_checkpoint()

        @property
        def _socket(self) -> Any:
            """The connection's socket when reads may bypass the layers above it, else None."""
            sock = self._direct
            if sock is _UNRESOLVED:
                sock = self._direct = _direct_socket(self.raw)
            return sock

        async def _receive_more(self) -> None:
            self._decrypt(await self.raw.read(READ_SIZE))

        def _decrypt(self, data: bytes) -> None:
            if not data:
                received = self.receive.buffered
                raise IncompleteReadError(
                    f"Connection closed during a Noise message ({received} bytes of it read)",
                    expected_bytes=2 if received < 2 else received + 1,
                    received_bytes=received,
                )
            for plaintext in self.receive.feed(data):
                self._plain += plaintext

        async def read(self, n: int | None = None) -> bytes:
            if n == 0:
                return b""
            plain = self._plain
            if n is None:
                while not plain:
                    await self._receive_more()
                data = bytes(plain)
                plain.clear()
                return data
            if len(plain) >= n:
                # Served without a socket read: yield now and then, so a reader looping on
                # buffered frames (up to 64 KiB of them) cannot hold the scheduler.
                self._served += 1
                if self._served >= YIELD_EVERY:
                    self._served = 0
                    await trio.lowlevel.checkpoint()
            while len(plain) < n:
                self._served = 0
                await self._receive_more()
            data = bytes(plain[:n])
            del plain[:n]
            return data

        async def write(self, data: bytes) -> None:
            # A cancelled writer must stop before sealing: a sealed message that is never sent
            # leaves the nonces out of step and the peer drops the connection. From here to
            # the socket send (whose own cancellation check sees the same state) nothing yields.
            await trio.lowlevel.checkpoint_if_cancelled()
            await self.raw.write(self.send.seal(data))

        async def close(self) -> None:
            await self.raw.close()

    return LeanNoiseSession


def lean(session: ISecureConn) -> ISecureConn:
    """``session`` (py-libp2p's, fresh from the handshake) as a :class:`LeanNoiseSession` with
    the same keys and nonces, or unchanged if it is not a ChaCha20-Poly1305 Noise session."""
    from libp2p.security.noise.io import NoiseTransportReadWriter
    from libp2p.security.secure_session import SecureSession
    from noise.backends.default.ciphers import ChaCha20Cipher  # type: ignore[import-untyped]

    if type(session) is not SecureSession:
        return session
    conn = session.conn
    if type(conn) is not NoiseTransportReadWriter or session.high_watermark:
        return session
    state = conn.noise_state
    protocol = state.noise_protocol
    if not state.handshake_finished or protocol is None:
        return session
    out, into = protocol.cipher_state_encrypt, protocol.cipher_state_decrypt
    if not (isinstance(out.cipher, ChaCha20Cipher) and isinstance(into.cipher, ChaCha20Cipher)):
        return session
    lean_session: ISecureConn = lean_session_class()(
        raw=conn.read_writer.read_write_closer,
        send=TransportCipher(bytes(out.k), out.n),
        receive=TransportCipher(bytes(into.k), into.n),
        local_peer=session.local_peer,
        local_private_key=session.local_private_key,
        remote_peer=session.remote_peer,
        remote_permanent_pubkey=session.remote_permanent_pubkey,
        is_initiator=session.is_initiator,
        conn=conn,
    )
    return lean_session


def noise_transport_class() -> type[Any]:
    """py-libp2p's Noise ``Transport`` whose sessions are :func:`lean` (built lazily)."""
    global _TRANSPORT
    if _TRANSPORT is None:
        from libp2p.security.noise.transport import Transport

        class LeanNoiseTransport(Transport):
            """py-libp2p's Noise XX handshake, then a :class:`LeanNoiseSession`."""

            async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
                return lean(await super().secure_inbound(conn))

            async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
                return lean(await super().secure_outbound(conn, peer_id))

        _TRANSPORT = LeanNoiseTransport
    return _TRANSPORT


_TRANSPORT: type[Any] | None = None


def _invalid(text: str) -> Exception:
    """py-libp2p's Noise error for a message that fails authentication."""
    from noise.exceptions import NoiseInvalidMessage

    return NoiseInvalidMessage(text)  # type: ignore[no-any-return]

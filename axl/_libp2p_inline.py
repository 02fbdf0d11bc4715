"""A gossip stream's RPCs handled in its yamux session's reader, no task between (see
docs/libp2p.md, "Gossip RPCs handled in the session's reader"). Sans-IO apart from the
sink's calls into the pubsub (``_handle_rpc_now``) and the session (``wake_stream``)."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from ._errors import DecodeError, FrameTooLarge
from ._libp2p_rpc import RpcDecoder

logger = logging.getLogger("axl.libp2p")


class InlineRpcs:
    """A gossip stream's RPCs handled in its yamux session's reader (``LeanYamux`` sinks).

    While the stream's task is parked (``busy`` False) the reader hands each DATA body to
    :meth:`sink`: RPCs are decoded and those needing no await handled at once; the first that
    needs one (control, a validator, an IDONTWANT to send) and every RPC after it go to
    ``pending`` for the task, which is woken, and the frames that arrive until it parks again
    are buffered by yamux as without a sink (bounded by the stream's receive window), so order
    is kept. An RPC over the cap or malformed is a ``refused`` reason for the task to act on
    (reset, counted). On a muxer without sinks (py-libp2p's own) nothing is attached.
    """

    def __init__(self, pubsub: Any, conn: Any, stream: Any, peer_id: Any, decoder: RpcDecoder):
        self.pubsub, self.conn, self.peer_id, self.decoder = pubsub, conn, peer_id, decoder
        self.stream_id: Any = getattr(stream, "stream_id", None)
        self.pending: deque[Any] = deque()
        self.refused: str | None = None
        self.busy = True
        from libp2p.pubsub.pb import rpc_pb2

        self.rpc_class = rpc_pb2.RPC
        attach = getattr(conn, "attach_sink", None)
        self.attached = attach is not None
        if attach is not None:
            attach(self.stream_id, self.sink)

    def detach(self) -> None:
        if self.attached:
            self.conn.detach_sink(self.stream_id)
            self.attached = False

    def sink(self, data: bytes) -> bool:
        if self.busy:
            return False
        rpc_class = self.rpc_class
        pubsub, pending = self.pubsub, self.pending
        try:
            bodies = self.decoder.feed(data)
        except FrameTooLarge:
            return self._refuse("oversized_rpc")
        except DecodeError:
            return self._refuse("malformed_rpc")
        for body in bodies:
            rpc = rpc_class()
            try:
                rpc.ParseFromString(body)
            except Exception:
                return self._refuse("malformed_rpc")
            if pending:
                pending.append(rpc)
                continue
            try:
                if not pubsub._handle_rpc_now(rpc, self.peer_id):
                    pending.append(rpc)
            except Exception as exc:  # never out into the session's reader
                pubsub.stats.inc("gossip.refused_rpc_failed")
                logger.debug("gossip RPC from %s failed: %r", self.peer_id, exc)
        if pending:
            self._wake()
        return True

    def _refuse(self, reason: str) -> bool:
        self.refused = reason
        self._wake()
        return True  # the bytes are dropped: the stream is about to be reset

    def _wake(self) -> None:
        self.busy = True
        self.conn.wake_stream(self.stream_id)

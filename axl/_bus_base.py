"""Shared state of the bus's parts, its configuration, and the signing send path.

:class:`BusBase` holds what every part of :class:`~axl.Bus` reads or writes; the parts are
mixins over it (:mod:`axl._bus_topics`, :mod:`axl._bus_blobs`, :mod:`axl._bus_receive`,
:mod:`axl._bus_handlers`), composed in :mod:`axl._bus`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ._blob_node import BlobNode
from ._blob_serve import BlobConfig
from ._blobs import BlobStore
from ._bus_subscription import Subscription
from ._delivery import TopicGate
from ._errors import (
    BusClosed,
    FrameTooLarge,
    MessageTypeError,
    PeerUnreachable,
    TransportClosed,
)
from ._guard import Accepted, FrameGuard
from ._identity import Identity, PeerId
from ._memory import MemoryTransport
from ._messages import ErrorReply, Message, MessageRegistry, default_registry
from ._stats import Counters
from ._transport import Transport
from ._wire import (
    MESSAGE_ID_LENGTH,
    UNSIGNED,
    Envelope,
    Kind,
    encode_body,
    seal,
    sealed_length,
    sign_body,
)

logger = logging.getLogger("axl.bus")

Handler = Callable[[Any, Any], Awaitable[Message | None]]
"""A message handler: ``(message, context) -> reply or None`` (typed in :meth:`Bus.on`)."""


@dataclass(frozen=True)
class BusConfig:
    """Limits and timing of a bus. Times are in seconds."""

    max_frame_size: int = 1 << 20
    freshness_window: float = 120.0
    max_future_skew: float = 30.0
    replay_capacity: int = 100_000
    handler_concurrency: int = 16
    handler_backlog: int = 1024
    subscription_capacity: int = 256
    request_timeout: float = 10.0
    topic_max_age: float = 10.0
    """Topic messages older than this on arrival are dropped (``dropped.topic_stale``)."""
    clock: Callable[[], float] = field(default=time.time)
    """Wall clock for envelope timestamps and freshness (inject one for tests)."""
    receive_batch: int = 64
    """Inbound frames taken from the transport and checked together, at most."""
    verify_threads: int | None = None
    """Worker threads that verify a batch's signatures off the event loop (libsodium releases
    the GIL, so they overlap with IO and with each other), and sign a ``send_many`` batch (one
    thread); 0 does both on the event loop. The default is 1, except on an in-process
    ``MemoryTransport`` or under a ``MockClock`` (0: simulations stay deterministic, and trio
    cannot see a worker thread, so simulated time would jump while one verifies)."""
    thread_batch_min: int = 4
    """Batches with fewer signatures than this are verified on the event loop: a thread hop
    costs about as much as one verification."""

    def __post_init__(self) -> None:
        threads = self.verify_threads
        if self.receive_batch < 1 or (threads or 0) < 0 or self.thread_batch_min < 1:
            raise ValueError("receive_batch, thread_batch_min >= 1 and verify_threads >= 0")


def sign_bodies(identity: Identity, bodies: list[bytes]) -> list[bytes]:
    """The signatures of envelope bodies (pure; run it on a worker thread for a batch)."""
    return [sign_body(identity, body) for body in bodies]


class PendingRequest:
    """A request waiting for its reply, which only ``peer`` may send."""

    __slots__ = ("done", "peer", "reply")

    def __init__(self, peer: PeerId) -> None:
        self.peer = peer
        self.done = trio.Event()
        self.reply: Accepted | None = None


class BusBase:
    """State shared by the bus's parts; see :class:`~axl.Bus`."""

    def __init__(
        self,
        identity: Identity,
        transport: Transport,
        *,
        config: BusConfig | None = None,
        registry: MessageRegistry | None = None,
        blobs: BlobStore | None = None,
        blob_config: BlobConfig | None = None,
    ) -> None:
        if transport.local_peer != identity.peer_id:
            raise ValueError("the transport speaks for another peer id than this identity")
        self.identity = identity
        self.transport = transport
        self.config = config or BusConfig()
        self.registry = registry if registry is not None else default_registry
        self.stats = Counters()
        self._guard = FrameGuard(
            identity.peer_id,
            self.registry,
            max_frame_size=self.config.max_frame_size,
            freshness_window_ms=int(self.config.freshness_window * 1000),
            max_future_skew_ms=int(self.config.max_future_skew * 1000),
            replay_capacity=self.config.replay_capacity,
        )
        self._topics = TopicGate(int(self.config.topic_max_age * 1000))
        self._handlers: dict[type[Message], Handler] = {}
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._joined: dict[str, int] = {}
        self._pending: dict[bytes, PendingRequest] = {}
        self._nonce = 0
        self._nursery: trio.Nursery | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._closed = False
        self._workers = 0
        self._idle_workers: list[trio.lowlevel.Task] = []  # parked handler workers
        self._workers_retired = False
        self._executing = 0
        self._rejection_replies = 0
        self._backlog: deque[Accepted] = deque()
        # Trusted-local mode: a transport that can vouch for a route (``MemoryTransport``).
        self._trusted_route: Callable[[PeerId], bool] | None = getattr(
            transport, "trusted_route", None
        )
        self.blobs = (
            None
            if blobs is None
            else BlobNode(blobs, transport, blob_config or BlobConfig(), self.stats)
        )

    @property
    def peer_id(self) -> PeerId:
        return self.identity.peer_id

    def _context(self, envelope: Envelope) -> object:
        """The handler context for ``envelope`` (a :class:`~axl.Context`)."""
        raise NotImplementedError

    # -- the send path -----------------------------------------------------------------------

    def _frame(
        self,
        message: Message,
        kind: Kind,
        *,
        recipient: PeerId | None = None,
        topic: str | None = None,
        reply_to: bytes | None = None,
    ) -> tuple[bytes, bytes]:
        """Encode and sign ``message``; returns ``(message id, frame)``."""
        message_id, body, signed = self._body(
            message, kind, recipient=recipient, topic=topic, reply_to=reply_to
        )
        return message_id, seal(body, sign_body(self.identity, body) if signed else UNSIGNED)

    def _body(
        self,
        message: Message,
        kind: Kind,
        *,
        recipient: PeerId | None = None,
        topic: str | None = None,
        reply_to: bytes | None = None,
    ) -> tuple[bytes, bytes, bool]:
        """Encode ``message`` into an envelope body, checking everything but the signature;
        returns ``(message id, body, whether it is to be signed)``. Raises
        :class:`BusClosed`, :class:`MessageTypeError`, :class:`FrameTooLarge`."""
        if self._closed:
            raise BusClosed("the bus is closed")
        cls = type(message)
        if not cls.axl_tag:
            raise MessageTypeError(f"{cls.__name__} has no tag and cannot be sent")
        message_id = os.urandom(MESSAGE_ID_LENGTH)
        self._nonce += 1
        route = self._trusted_route  # topic frames are always signed (mixed audiences)
        signed = recipient is None or route is None or not route(recipient)
        body = encode_body(
            self.identity.peer_id,
            kind=kind,
            type=cls.axl_tag,
            version=cls.axl_version,
            recipient=recipient,
            topic=topic,
            message_id=message_id,
            reply_to=reply_to,
            timestamp_ms=int(self.config.clock() * 1000),
            nonce=self._nonce,
            payload=message.encode_payload(),
        )
        size = sealed_length(len(body))
        if size > self.config.max_frame_size:
            raise FrameTooLarge(
                f"{cls.__name__} encodes to {size} bytes, over the cap of "
                f"{self.config.max_frame_size}; send a reference instead of the data"
            )
        return message_id, body, signed

    def _offload_threads(self) -> int:
        """Worker threads for batches of signatures (see ``BusConfig.verify_threads``)."""
        if self.config.verify_threads is not None:
            return self.config.verify_threads
        in_process = isinstance(self.transport, MemoryTransport)
        # trio.testing is looked up, not imported: importing it imports pytest when that is
        # installed (~0.1 s of CPU at every process start); a MockClock implies it is loaded.
        testing = sys.modules.get("trio.testing")
        clock = trio.lowlevel.current_clock()
        simulated = testing is not None and isinstance(clock, testing.MockClock)
        return 0 if in_process or simulated else 1

    async def _seal_all(self, prepared: list[tuple[bytes, bool]]) -> list[bytes]:
        """Frames for ``(body, signed)`` pairs, in order; the signatures as one batch, on a
        worker thread when there are at least ``thread_batch_min`` of them."""
        bodies = [body for body, signed in prepared if signed]
        if len(bodies) >= self.config.thread_batch_min and self._offload_threads() >= 1:
            self.stats.inc("sign.thread_batches")
            signatures = await trio.to_thread.run_sync(sign_bodies, self.identity, bodies)
        else:
            signatures = sign_bodies(self.identity, bodies)
        remaining = iter(signatures)
        return [seal(body, next(remaining) if signed else UNSIGNED) for body, signed in prepared]

    async def _reply(self, envelope: Envelope, message: Message, kind: Kind) -> None:
        try:
            _, frame = self._frame(
                message, kind, recipient=envelope.sender, reply_to=envelope.message_id
            )
            await self.transport.send(envelope.sender, frame)
            self.stats.inc("replies")
        except (PeerUnreachable, TransportClosed, BusClosed) as exc:
            self.stats.inc("dropped.reply_undeliverable")
            logger.info("could not reply to %s: %s", envelope.sender.short(), exc)
        except MessageTypeError as exc:  # the handler returned a Message subclass with no tag
            self.stats.inc("handler_errors")
            logger.error("cannot send the reply: %s", exc)
            if kind is not Kind.ERROR:
                await self._reply_error(envelope, "handler_error", str(exc)[:500])
        except FrameTooLarge as exc:
            self.stats.inc("dropped.reply_too_large")
            logger.warning("reply too large: %s", exc)
            if kind is not Kind.ERROR:
                await self._reply_error(envelope, "reply_too_large", str(exc))

    async def _reply_error(self, envelope: Envelope, code: str, detail: str) -> None:
        await self._reply(envelope, ErrorReply(code=code, detail=detail), Kind.ERROR)

    def _start_reply_error(self, envelope: Envelope, code: str, detail: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._reply_error, envelope, code, detail)

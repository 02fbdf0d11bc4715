"""The AXL bus: signed, typed messages between peers over any :class:`Transport`.

Delivery semantics
------------------
* ``publish(topic, msg)``: at-most-once to every peer that joined the topic (not to ourselves).
  A subscriber whose queue is full misses the message; the miss is counted. The receiving bus
  enforces it whatever the transport does: a topic message is handled only if it was published
  (its signed timestamp) no earlier than this bus joined the topic, is at most
  ``topic_max_age`` seconds old on arrival, and was not seen before (replay window). So a late
  joiner gets no earlier messages, and a restarted subscriber gets none it handled before.
* Direct messages (and requests) to our own peer id are delivered like any other.
* ``send(peer, msg)``: one direct message; waits while the transport applies backpressure;
  raises :class:`PeerUnreachable` when there is no route. No delivery receipt.
* ``send_many(peer, msgs)``: like ``send`` for each, in order, with the signatures made as one
  batch (on a worker thread for a large one): for bursts. All are checked before any is sent.
* ``request(peer, msg, timeout=…)``: a direct message whose handler's return value comes back
  as the reply; raises :class:`RequestTimeout`, :class:`RemoteError` or
  :class:`PeerUnreachable`. Replies are accepted only from the peer asked.
* Handlers (``bus.on(Type, handler)``) receive direct and topic messages of their type. They run
  concurrently up to ``handler_concurrency``; beyond that a bounded backlog holds work, and when
  that is full new messages are shed (requests get a ``busy`` error reply) — so the receive loop
  never stalls and replies to our own requests always get through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import trio

from ._blob_node import refuse_bulk
from ._blob_serve import BlobConfig
from ._blobs import BlobStore
from ._bus_base import BusBase, BusConfig, PendingRequest
from ._bus_blobs import BlobsMixin
from ._bus_receive import ReceiveMixin
from ._bus_subscription import Delivery, Subscription
from ._bus_topics import TopicsMixin
from ._errors import BusClosed, MessageTypeError, RemoteError, RequestTimeout
from ._identity import Identity, PeerId
from ._messages import ErrorReply, Message, MessageRegistry
from ._transport import Transport
from ._wire import Envelope, Kind

__all__ = ["Bus", "BusConfig", "Context", "Delivery", "Subscription", "open_bus"]

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler knows about the message it handles."""

    bus: Bus
    envelope: Envelope

    @property
    def sender(self) -> PeerId:
        return self.envelope.sender

    @property
    def topic(self) -> str | None:
        return self.envelope.topic

    @property
    def message_id(self) -> bytes:
        return self.envelope.message_id

    @property
    def is_request(self) -> bool:
        return self.envelope.kind is Kind.REQUEST


class Bus(ReceiveMixin, TopicsMixin, BlobsMixin, BusBase):
    """One peer's endpoint: signs, sends, receives, checks and dispatches messages.

    Run it with :func:`open_bus` (or ``await nursery.start(bus.run)``).
    """

    def _context(self, envelope: Envelope) -> Context:
        return Context(self, envelope)

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Receive and dispatch until cancelled or :meth:`aclose` is called."""
        with trio.CancelScope() as scope:
            self._cancel_scope = scope
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    if self.blobs is not None:
                        nursery.start_soon(self.blobs.serve)
                    else:
                        nursery.start_soon(refuse_bulk, self.transport)
                    task_status.started()
                    await self._receive_loop()
                    self._retire_workers()
            finally:
                self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        self._nursery = None
        for pending in self._pending.values():
            pending.done.set()
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription._close()

    async def aclose(self) -> None:
        """Stop the bus; pending requests fail with :class:`BusClosed`."""
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
        self._shutdown()
        await trio.lowlevel.checkpoint()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- registration ------------------------------------------------------------------------

    def on(
        self, message_type: type[M], handler: Callable[[M, Context], Awaitable[Message | None]]
    ) -> None:
        """Handle messages of ``message_type`` (direct or from joined topics).

        The handler's return value, if any, is the reply when the message was a request. A
        handler may raise :class:`RemoteError` to answer a request with a chosen error code.
        """
        if not message_type.axl_tag:
            raise MessageTypeError(f"{message_type.__name__} has no tag and cannot be received")
        if message_type in self._handlers:
            raise MessageTypeError(f"a handler for {message_type.__name__} is already registered")
        self._handlers[message_type] = handler

    # -- sending -----------------------------------------------------------------------------

    async def publish(self, topic: str, message: Message) -> None:
        """Publish to a topic: at-most-once delivery to its current subscribers."""
        _, frame = self._frame(message, Kind.MESSAGE, topic=topic)
        await self.transport.publish(topic, frame)
        self.stats.inc("published")

    async def send(self, peer: PeerId, message: Message) -> None:
        """Send one direct message. Raises :class:`PeerUnreachable`, :class:`FrameTooLarge`."""
        _, frame = self._frame(message, Kind.MESSAGE, recipient=peer)
        await self.transport.send(peer, frame)
        self.stats.inc("sent")

    async def send_many(self, peer: PeerId, messages: Iterable[Message]) -> None:
        """Send direct messages to ``peer``, in order, signed as one batch: on a worker thread
        when there are at least ``thread_batch_min`` (see ``BusConfig.verify_threads``), so a
        burst costs the event loop no signing.

        Every message is encoded and checked first, so :class:`FrameTooLarge` or
        :class:`MessageTypeError` means none was sent; then raises like :meth:`send`
        (on :class:`PeerUnreachable` the messages before the failing one were sent).
        """
        prepared = [self._body(message, Kind.MESSAGE, recipient=peer) for message in messages]
        frames = await self._seal_all([(body, signed) for _, body, signed in prepared])
        for frame in frames:
            if self._closed:
                raise BusClosed("the bus is closed")
            await self.transport.send(peer, frame)
            self.stats.inc("sent")

    async def request(
        self, peer: PeerId, message: Message, *, timeout: float | None = None
    ) -> Message:
        """Send a request and wait for the reply.

        Raises :class:`RequestTimeout` after ``timeout`` seconds (default from the config),
        :class:`RemoteError` if the peer answered with an error, :class:`PeerUnreachable` if it
        cannot be reached, :class:`BusClosed` if the bus closes meanwhile. Cancellation leaves
        no state behind.
        """
        message_id, frame = self._frame(message, Kind.REQUEST, recipient=peer)
        pending = PendingRequest(peer)
        self._pending[message_id] = pending
        self.stats.inc("requests")
        limit = self.config.request_timeout if timeout is None else timeout
        try:
            with trio.move_on_after(limit) as scope:
                await self.transport.send(peer, frame)
                await pending.done.wait()
        finally:
            self._pending.pop(message_id, None)
        if pending.reply is None:
            if scope.cancelled_caught:
                self.stats.inc("request_timeouts")
                raise RequestTimeout(
                    f"no reply from {peer.short()} to {type(message).__name__} within {limit} s"
                )
            raise BusClosed("the bus closed while waiting for a reply")
        reply = pending.reply
        if reply.envelope.kind is Kind.ERROR:
            assert isinstance(reply.message, ErrorReply)
            raise RemoteError(reply.message.code, reply.message.detail)
        return reply.message


@asynccontextmanager
async def open_bus(
    identity: Identity,
    transport: Transport,
    *,
    config: BusConfig | None = None,
    registry: MessageRegistry | None = None,
    blobs: BlobStore | None = None,
    blob_config: BlobConfig | None = None,
) -> AsyncIterator[Bus]:
    """Run a :class:`Bus` for the duration of the ``async with`` block.

    The transport stays open (its owner closes it); the bus stops receiving on exit. With a
    ``blobs`` store the bus also serves offered blobs and can fetch them.
    """
    bus = Bus(
        identity, transport, config=config, registry=registry, blobs=blobs, blob_config=blob_config
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        try:
            yield bus
        finally:
            await bus.aclose()

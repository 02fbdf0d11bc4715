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
* ``request(peer, msg, timeout=…)``: a direct message whose handler's return value comes back
  as the reply; raises :class:`RequestTimeout`, :class:`RemoteError` or
  :class:`PeerUnreachable`. Replies are accepted only from the peer asked.
* Handlers (``bus.on(Type, handler)``) receive direct and topic messages of their type. They run
  concurrently up to ``handler_concurrency``; beyond that a bounded backlog holds work, and when
  that is full new messages are shed (requests get a ``busy`` error reply) — so the receive loop
  never stalls and replies to our own requests always get through.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from ._blob_id import BlobId
from ._blob_node import BlobNode, refuse_bulk
from ._blob_serve import BlobConfig
from ._blobs import BlobStore
from ._delivery import TopicGate
from ._errors import (
    BlobError,
    BusClosed,
    FrameTooLarge,
    MessageTypeError,
    PeerUnreachable,
    RejectedFrame,
    RemoteError,
    RequestTimeout,
    TransportClosed,
)
from ._guard import Accepted, FrameGuard
from ._identity import Identity, PeerId
from ._messages import ErrorReply, Message, MessageRegistry, default_registry
from ._stats import Counters
from ._transport import Transport
from ._wire import MESSAGE_ID_LENGTH, Envelope, Kind, encode_frame

logger = logging.getLogger("axl.bus")

M = TypeVar("M", bound=Message)

_MAX_REJECTION_REPLIES = 64
"""Error replies to rejected requests in flight at once; more are dropped (counted)."""


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


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message delivered to a topic subscription."""

    message: Message
    envelope: Envelope

    @property
    def sender(self) -> PeerId:
        return self.envelope.sender


Handler = Callable[[Any, Context], Awaitable[Message | None]]


class _PendingRequest:
    __slots__ = ("done", "peer", "reply")

    def __init__(self, peer: PeerId) -> None:
        self.peer = peer
        self.done = trio.Event()
        self.reply: Accepted | None = None


class Subscription:
    """A bounded stream of a topic's messages. Iterate it with ``async for``."""

    def __init__(self, bus: Bus, topic: str, capacity: int) -> None:
        self.topic = topic
        self._bus = bus
        self._send, self._receive = trio.open_memory_channel[Delivery](capacity)
        self.dropped = 0

    def _offer(self, delivery: Delivery) -> bool:
        try:
            self._send.send_nowait(delivery)
        except trio.WouldBlock:
            self.dropped += 1
            return False
        except trio.BrokenResourceError:
            return False
        return True

    async def receive(self) -> Delivery:
        """The next delivery; raises ``trio.EndOfChannel`` after the subscription closed."""
        return await self._receive.receive()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Delivery:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    def _close(self) -> None:
        self._send.close()


class Bus:
    """One peer's endpoint: signs, sends, receives, checks and dispatches messages.

    Run it with :func:`open_bus` (or ``await nursery.start(bus.run)``).
    """

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
        self._pending: dict[bytes, _PendingRequest] = {}
        self._nonce = 0
        self._nursery: trio.Nursery | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._closed = False
        self._workers = 0
        self._executing = 0
        self._rejection_replies = 0
        self._backlog: deque[Accepted] = deque()
        self.blobs = (
            None
            if blobs is None
            else BlobNode(blobs, transport, blob_config or BlobConfig(), self.stats)
        )

    @property
    def peer_id(self) -> PeerId:
        return self.identity.peer_id

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

    async def join(self, topic: str) -> None:
        """Receive the topic's messages into the type handlers: those published from now on
        (anything older that a transport hands over, e.g. a gossip replay, is dropped)."""
        if not self._joined.get(topic):
            # Set first: frames can arrive while the transport subscribes.
            since = self._topics.joining(topic, int(self.config.clock() * 1000))
            try:
                await self.transport.subscribe(topic)  # counted only once it succeeded
            except BaseException:
                if not self._joined.get(topic):
                    self._topics.left(topic)
                raise
            self._topics.joining(topic, since)  # a concurrent failed join removed it
        self._joined[topic] = self._joined.get(topic, 0) + 1

    async def leave(self, topic: str) -> None:
        """Undo one :meth:`join`."""
        count = self._joined.get(topic, 0)
        if count <= 1:
            self._joined.pop(topic, None)
            self._topics.left(topic)
            if count == 1:
                await self.transport.unsubscribe(topic)
        else:
            self._joined[topic] = count - 1

    @asynccontextmanager
    async def subscribe(
        self, topic: str, *, capacity: int | None = None
    ) -> AsyncIterator[Subscription]:
        """A bounded stream of the topic's messages for the duration of the ``async with``."""
        subscription = Subscription(self, topic, capacity or self.config.subscription_capacity)
        self._subscriptions.setdefault(topic, []).append(subscription)
        joined = False
        try:
            await self.join(topic)  # inside: a join cancelled or failing is undone below
            joined = True
            yield subscription
        finally:
            subscription._close()
            remaining = self._subscriptions.get(topic, [])
            if subscription in remaining:
                remaining.remove(subscription)
            if not remaining:
                self._subscriptions.pop(topic, None)
            if joined:
                with trio.CancelScope(shield=True), suppress(TransportClosed):
                    await self.leave(topic)

    # -- sending -----------------------------------------------------------------------------

    def _frame(
        self,
        message: Message,
        kind: Kind,
        *,
        recipient: PeerId | None = None,
        topic: str | None = None,
        reply_to: bytes | None = None,
    ) -> tuple[bytes, bytes]:
        if self._closed:
            raise BusClosed("the bus is closed")
        cls = type(message)
        if not cls.axl_tag:
            raise MessageTypeError(f"{cls.__name__} has no tag and cannot be sent")
        message_id = os.urandom(MESSAGE_ID_LENGTH)
        self._nonce += 1
        frame = encode_frame(
            self.identity,
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
        if len(frame) > self.config.max_frame_size:
            raise FrameTooLarge(
                f"{cls.__name__} encodes to {len(frame)} bytes, over the cap of "
                f"{self.config.max_frame_size}; send a reference instead of the data"
            )
        return message_id, frame

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
        pending = _PendingRequest(peer)
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

    # -- blobs -------------------------------------------------------------------------------

    def _blob_node(self) -> BlobNode:
        if self.blobs is None:
            raise BlobError("this bus has no blob store (open_bus(..., blobs=BlobStore(...)))")
        return self.blobs

    async def fetch(
        self, blob_id: BlobId, *, from_peers: Iterable[PeerId], timeout: float | None = None
    ) -> BlobId:
        """Fetch a blob from its holders into this bus's store (see ``docs/blobs.md``).

        Raises :class:`BlobUnavailable`, :class:`StoreFull`, or :class:`BlobError` without a
        store or bulk-capable transport.
        """
        return await self._blob_node().fetch(blob_id, from_peers, timeout=timeout)

    def offer(self, blob_id: BlobId, *, to: Iterable[PeerId] | None = None) -> None:
        """Serve a stored blob to peers that fetch it (all, or only ``to``); raises
        :class:`BlobNotHeld`."""
        self._blob_node().offer(blob_id, to)

    def withdraw(self, blob_id: BlobId) -> None:
        """Stop serving a blob."""
        self._blob_node().withdraw(blob_id)

    # -- receiving ---------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        guard = self._guard
        clock = self.config.clock
        while True:
            try:
                inbound = await self.transport.receive()
            except TransportClosed:
                return
            now_ms = int(clock() * 1000)
            try:
                accepted = guard.check(inbound.frame, now_ms)
            except RejectedFrame as exc:
                self.stats.inc("rejected." + exc.reason)
                self._answer_rejected(exc)
                logger.info(
                    "rejected frame: %s",
                    exc,
                    extra={
                        "peer": str(self.peer_id),
                        "via": str(inbound.via),
                        "reason": exc.reason,
                    },
                )
                continue
            self.stats.inc("received")
            self._dispatch(accepted, now_ms)
            await trio.lowlevel.checkpoint_if_cancelled()

    def _dispatch(self, accepted: Accepted, now_ms: int) -> None:
        envelope = accepted.envelope
        if self._nursery is None:  # closing: a frame that was already on its way
            self.stats.inc("dropped.closing")
            return
        if envelope.topic is not None:
            if envelope.sender == self.peer_id:  # our own publication, echoed back
                return
            refusal = self._topics.refusal(envelope, now_ms)
            if refusal is not None:
                self.stats.inc("dropped." + refusal)
                return
        if envelope.is_response:
            assert envelope.reply_to is not None
            pending = self._pending.get(envelope.reply_to)
            if pending is None or pending.peer != envelope.sender:
                self.stats.inc("dropped.unexpected_reply")
                return
            pending.reply = accepted
            pending.done.set()
            return
        if envelope.topic is not None:
            for subscription in self._subscriptions.get(envelope.topic, ()):
                if not subscription._offer(Delivery(accepted.message, envelope)):
                    self.stats.inc("dropped.slow_subscriber")
        handler = self._handlers.get(type(accepted.message))
        if handler is None:
            if envelope.kind is Kind.REQUEST:
                self._start_reply_error(envelope, "no_handler", f"no handler for {envelope.type}")
            elif envelope.topic is None or envelope.topic not in self._subscriptions:
                self.stats.inc("dropped.unhandled")
            return
        # Every message goes through the FIFO backlog and workers always take its head, so
        # handlers start in arrival order whichever worker trio happens to run first. Admitted
        # work (executing + waiting) is bounded by handler_concurrency + handler_backlog.
        config = self.config
        if (
            self._executing + len(self._backlog)
            >= config.handler_concurrency + config.handler_backlog
        ):
            self.stats.inc("dropped.overloaded")
            if envelope.kind is Kind.REQUEST:
                self._start_reply_error(envelope, "busy", "the peer is overloaded; retry later")
            return
        self._backlog.append(accepted)
        if self._workers < config.handler_concurrency:
            self._workers += 1
            self._nursery.start_soon(self._handler_worker)

    def _start_reply_error(self, envelope: Envelope, code: str, detail: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._reply_error, envelope, code, detail)

    def _answer_rejected(self, exc: RejectedFrame) -> None:
        """Tell the authenticated sender of a rejected request why (error code = the rejection
        reason), instead of leaving it to time out. Not for replays (the original was answered,
        and a replayer must not make us send to its victim), and at most
        ``_MAX_REJECTION_REPLIES`` at a time (a flood of bad requests cannot pile up tasks)."""
        envelope = exc.envelope
        if (
            not isinstance(envelope, Envelope)
            or envelope.kind is not Kind.REQUEST
            or envelope.recipient != self.peer_id
            or exc.reason == "replay"
        ):
            return
        if self._rejection_replies >= _MAX_REJECTION_REPLIES or self._nursery is None:
            self.stats.inc("dropped.rejection_reply")
            return
        self._rejection_replies += 1
        self._nursery.start_soon(self._reply_rejected, envelope, exc.reason, str(exc))

    async def _reply_rejected(self, envelope: Envelope, code: str, detail: str) -> None:
        try:
            await self._reply_error(envelope, code, detail[:200])
        finally:
            self._rejection_replies -= 1

    async def _handler_worker(self) -> None:
        try:
            while self._backlog:
                self._executing += 1
                try:
                    await self._run_handler(self._backlog.popleft())
                finally:
                    self._executing -= 1
        finally:
            self._workers -= 1

    async def _run_handler(self, accepted: Accepted) -> None:
        envelope = accepted.envelope
        handler = self._handlers[type(accepted.message)]
        context = Context(self, envelope)
        try:
            result = await handler(accepted.message, context)
        except RemoteError as exc:
            self.stats.inc("handler_errors")
            if envelope.kind is Kind.REQUEST:
                await self._reply_error(envelope, exc.code, exc.detail)
            return
        except Exception as exc:
            self.stats.inc("handler_errors")
            logger.exception(
                "handler for %s failed",
                envelope.type,
                extra={
                    "peer": str(self.peer_id),
                    "sender": str(envelope.sender),
                    "message_id": envelope.message_id.hex(),
                },
            )
            if envelope.kind is Kind.REQUEST:
                detail = f"{type(exc).__name__}: {exc}"[:500]
                await self._reply_error(envelope, "handler_error", detail)
            return
        if result is not None and not isinstance(result, Message):
            # A handler bug (e.g. it returned a dict): answered and counted like a raise.
            self.stats.inc("handler_errors")
            detail = (
                f"the {envelope.type} handler returned a {type(result).__name__}, not a Message"
            )
            logger.error(detail, extra={"peer": str(self.peer_id), "sender": str(envelope.sender)})
            if envelope.kind is Kind.REQUEST:
                await self._reply_error(envelope, "handler_error", detail)
            return
        if envelope.kind is Kind.REQUEST:
            if result is None:
                detail = f"the {envelope.type} handler returned nothing"
                await self._reply_error(envelope, "no_reply", detail)
            else:
                await self._reply(envelope, result, Kind.RESPONSE)

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

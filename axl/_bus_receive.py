"""The bus's receive pipeline: batches of frames from the transport → the guard's checks
(signatures verified per batch, on worker threads when the batch is large) → routing to
pending requests, topic subscriptions and handlers. Rejections are counted per frame (and a
rejected request's authenticated sender is told why); one bad frame never costs its batch.

On a transport that shares a record of verified frames (``verified_frames``: the in-process
memory network's), a frame whose exact bytes another receiver verified skips the Ed25519 check
(counted ``verify.cached``), and each frame this receiver verifies is added to it. On a
transport that can filter published frames (``set_interest``: the memory network's), the bus
installs :meth:`ReceiveMixin._wants_published`: only the plain messages it would drop as
unhandled are left out. On a transport that sets up links to peers (``prepare``: libp2p's), a
request that arrives from its own sender (the transport-level peer that handed it over) makes
the bus tell the transport at once, before the signature check and the handler, so that the
link for the reply is being set up while they run."""

from __future__ import annotations

import logging

import trio

from ._bus_handlers import HandlersMixin
from ._bus_subscription import Delivery
from ._errors import RejectedFrame, TransportClosed, UnknownMessageType
from ._guard import Accepted, Prechecked, verify_signatures
from ._transport import InboundFrame
from ._verified import VerifiedFrames
from ._wire import Envelope, Kind

logger = logging.getLogger("axl.bus")

_MAX_REJECTION_REPLIES = 64
"""Error replies to rejected requests in flight at once; more are dropped (counted)."""


class ReceiveMixin(HandlersMixin):
    """The receive loop, routing, and rejection replies."""

    _threads = 0

    async def _receive_loop(self) -> None:
        """Batches from the transport: cheap checks, then the batch's signatures (on worker
        threads when it is large enough), then the stateful checks and routing, in order."""
        guard = self._guard
        clock = self.config.clock
        max_frames = self.config.receive_batch
        receive_batch = self.transport.receive_batch
        self._threads = self._offload_threads()
        shared = getattr(self.transport, "verified_frames", None)
        verified = shared if isinstance(shared, VerifiedFrames) else None
        set_interest = getattr(self.transport, "set_interest", None)
        if callable(set_interest):
            set_interest(self._wants_published)
        prepare = getattr(self.transport, "prepare", None)
        if not callable(prepare):
            prepare = None
        while True:
            try:
                batch = await receive_batch(max_frames)
            except TransportClosed:
                return
            checked: list[tuple[InboundFrame, Prechecked]] = []
            for inbound in batch:
                try:
                    via = inbound.via if inbound.trusted else None
                    item = guard.precheck(inbound.frame, trusted_via=via)
                except RejectedFrame as exc:
                    self._rejected(exc, inbound)
                    continue
                if verified is not None and item.verify and verified.check(inbound.frame):
                    item = Prechecked(item.envelope, item.cls, verify=False)
                    self.stats.inc("verify.cached")
                if (
                    prepare is not None
                    and item.envelope.kind is Kind.REQUEST
                    and inbound.via is not None
                    and inbound.via == item.envelope.sender
                ):
                    prepare(inbound.via)  # the reply's link opens while we verify and handle
                checked.append((inbound, item))
            if checked:
                verdicts = await self._verify([item for _, item in checked])
                now_ms = int(clock() * 1000)
                for (inbound, item), signature_ok in zip(checked, verdicts, strict=True):
                    if verified is not None and item.verify and signature_ok:
                        verified.add(inbound.frame)
                    try:
                        accepted = guard.finish(item, signature_ok, now_ms)
                    except RejectedFrame as exc:
                        self._rejected(exc, inbound)
                        continue
                    self.stats.inc("received")
                    self._dispatch(accepted, now_ms)
            await trio.lowlevel.checkpoint_if_cancelled()

    def _wants_published(self, topic: str, envelope: Envelope) -> bool:
        """False only for a frame :meth:`_dispatch` would drop as unhandled: a plain message
        (not a request or response), on a topic without subscription streams, of a known type
        without a handler. Unknown types and anything else still arrive (and are rejected or
        routed, counted, as before)."""
        if envelope.kind is not Kind.MESSAGE or topic in self._subscriptions:
            return True
        try:
            cls = self._guard.registry.lookup(envelope.type, envelope.version)
        except UnknownMessageType:
            return True
        return cls in self._handlers

    async def _verify(self, batch: list[Prechecked]) -> list[bool]:
        """The batch's signature verdicts: on the event loop for a small batch, else split
        over ``verify_threads`` worker threads (libsodium releases the GIL)."""
        config = self.config
        wanted = sum(item.verify for item in batch)
        threads = min(self._threads, wanted // config.thread_batch_min)
        if threads < 1:
            return verify_signatures(batch)
        self.stats.inc("verify.thread_batches")
        if threads == 1:
            return await trio.to_thread.run_sync(verify_signatures, batch)
        step = -(-len(batch) // threads)
        parts: list[list[bool]] = [[] for _ in range(threads)]

        async def verify_part(index: int) -> None:
            chunk = batch[index * step : (index + 1) * step]
            parts[index] = await trio.to_thread.run_sync(verify_signatures, chunk)

        async with trio.open_nursery() as nursery:
            for index in range(threads):
                nursery.start_soon(verify_part, index)
        return [verdict for part in parts for verdict in part]

    def _rejected(self, exc: RejectedFrame, inbound: InboundFrame) -> None:
        self.stats.inc("rejected." + exc.reason)
        self._answer_rejected(exc)
        logger.info(
            "rejected frame: %s",
            exc,
            extra={"peer": str(self.peer_id), "via": str(inbound.via), "reason": exc.reason},
        )

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
        if type(accepted.message) not in self._handlers:
            if envelope.kind is Kind.REQUEST:
                self._start_reply_error(envelope, "no_handler", f"no handler for {envelope.type}")
            elif envelope.topic is None or envelope.topic not in self._subscriptions:
                self.stats.inc("dropped.unhandled")
            return
        self._admit(accepted)

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

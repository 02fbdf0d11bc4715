"""The bus's receive pipeline: frames from the transport → the guard's checks → routing to
pending requests, topic subscriptions and handlers. Rejections are counted (and a rejected
request's authenticated sender is told why)."""

from __future__ import annotations

import logging

import trio

from ._bus_handlers import HandlersMixin
from ._bus_subscription import Delivery
from ._errors import RejectedFrame, TransportClosed
from ._guard import Accepted
from ._wire import Envelope, Kind

logger = logging.getLogger("axl.bus")

_MAX_REJECTION_REPLIES = 64
"""Error replies to rejected requests in flight at once; more are dropped (counted)."""


class ReceiveMixin(HandlersMixin):
    """The receive loop, routing, and rejection replies."""

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

"""Running handlers: a FIFO backlog drained by at most ``handler_concurrency`` workers, and
the mapping of a handler's outcome to the reply a request gets.

Workers are started on demand; once the backlog is empty, one of them (``MAX_IDLE_WORKERS``)
parks until more work comes instead of exiting, and is woken by the next admitted message:
a message arriving at an idle bus costs a wake-up, not a task spawn and a task exit. A
parked worker ends when the bus's nursery is cancelled, or, when the receive loop ends
first, once the backlog is drained (:meth:`HandlersMixin._retire_workers`)."""

from __future__ import annotations

import logging

import trio

from ._bus_base import BusBase
from ._errors import RemoteError
from ._guard import Accepted
from ._messages import Message
from ._wire import Envelope, Kind

logger = logging.getLogger("axl.bus")
reschedule = trio.lowlevel.reschedule

MAX_IDLE_WORKERS = 1
"""Workers that park when the backlog runs dry; others end (as every worker did before).
One covers messages arriving one at a time; a burst's extra workers do not linger, so an
agent that once had a burst keeps one task, not ``handler_concurrency`` of them."""


class HandlersMixin(BusBase):
    """Admission to the backlog, the workers, and handler outcomes."""

    def _admit(self, accepted: Accepted) -> None:
        """Queue an accepted message for its handler, or shed it when the backlog is full.

        Every message goes through the FIFO backlog and workers always take its head, so
        handlers start in arrival order whichever worker trio happens to run first. Admitted
        work (executing + waiting) is bounded by handler_concurrency + handler_backlog.
        """
        config = self.config
        if (
            self._executing + len(self._backlog)
            >= config.handler_concurrency + config.handler_backlog
        ):
            self.stats.inc("dropped.overloaded")
            if accepted.envelope.kind is Kind.REQUEST:
                self._start_reply_error(
                    accepted.envelope, "busy", "the peer is overloaded; retry later"
                )
            return
        self._backlog.append(accepted)
        if self._idle_workers:
            reschedule(self._idle_workers.pop())  # a parked worker takes the backlog's head
        elif self._workers < config.handler_concurrency and self._nursery is not None:
            self._workers += 1
            self._nursery.start_soon(self._handler_worker)

    async def _handler_worker(self) -> None:
        backlog, idle = self._backlog, self._idle_workers
        task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:  # cancelled while parked
            idle.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        try:
            while True:
                while backlog:
                    self._executing += 1
                    try:
                        await self._run_handler(backlog.popleft())
                    finally:
                        self._executing -= 1
                if self._workers_retired or len(idle) >= MAX_IDLE_WORKERS:
                    return
                idle.append(task)  # parked (trio's own wait/reschedule: no ParkingLot)
                await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            self._workers -= 1

    def _retire_workers(self) -> None:
        """Let the workers end once the backlog is empty (the receive loop has ended, so
        nothing more is admitted), waking the parked ones."""
        self._workers_retired = True
        idle = self._idle_workers
        while idle:
            reschedule(idle.pop())

    async def _run_handler(self, accepted: Accepted) -> None:
        envelope = accepted.envelope
        handler = self._handlers[type(accepted.message)]
        try:
            result = await handler(accepted.message, self._context(envelope))
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
        await self._handler_returned(envelope, result)

    async def _handler_returned(self, envelope: Envelope, result: object) -> None:
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

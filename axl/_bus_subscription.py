"""Topic subscriptions of a bus: bounded streams of deliveries."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from ._identity import PeerId
from ._messages import Message
from ._wire import Envelope


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message delivered to a topic subscription."""

    message: Message
    envelope: Envelope

    @property
    def sender(self) -> PeerId:
        return self.envelope.sender


class Subscription:
    """A bounded stream of a topic's messages. Iterate it with ``async for``."""

    def __init__(self, bus: object, topic: str, capacity: int) -> None:
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

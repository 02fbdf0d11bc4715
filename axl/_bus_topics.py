"""Joining and leaving topics, and topic subscriptions, for :class:`~axl.Bus`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import trio

from ._bus_base import BusBase
from ._bus_subscription import Subscription
from ._errors import TransportClosed


class TopicsMixin(BusBase):
    """``join``, ``leave`` and ``subscribe``."""

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

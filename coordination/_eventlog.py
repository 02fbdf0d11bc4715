"""Reading the deployment's events: ranges, a poll cursor and an async watch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from ._artifacts import CONTRACTS
from ._base import ChainBase
from ._embedded import tester_log
from ._errors import CoordinationError
from ._events import ChainEvent


class EventsMixin(ChainBase):
    """Decoded events of the bound deployment."""

    def events(
        self, from_block: int | None = None, to_block: int | None = None
    ) -> list[ChainEvent]:
        """Decoded events of the deployment's contracts in ``[from_block, to_block]``
        (default: from the deployment block to the latest), in chain order. Raises
        :class:`NotDeployed` when the contracts have no code (a reset node),
        :class:`ChainUnavailable` or :class:`TransactionError` (never a web3 exception)."""
        book = self.address_book
        start = book.block_number if from_block is None else from_block
        end: int | str = "latest" if to_block is None else to_block
        query = {
            "fromBlock": start,
            "toBlock": end,
            "address": [self._contracts[n].address for n in CONTRACTS],
        }
        try:
            tester = self._conn.tester
            if tester is not None:  # eth-tester directly, without web3's request path
                last = self.block_number() if to_block is None else to_block
                found = self._read(lambda: tester.get_logs(start, last, query["address"]))
                logs = [tester_log(log) for log in found]
            else:
                logs = self._read(lambda: self._conn.w3.eth.get_logs(query))
        except CoordinationError:
            self.check_deployment()  # NotDeployed when the node lost the contracts
            raise
        if not logs and from_block is None:
            self.check_deployment()  # a deployment's history is never empty
        decoded = (self.decode_log(log) for log in logs)
        return [e for e in decoded if e is not None]

    def event_cursor(self, from_block: int | None = None) -> EventCursor:
        """A poll-based cursor over new events, starting at ``from_block`` (default: the
        deployment block)."""
        start = self.address_book.block_number if from_block is None else from_block
        return EventCursor(self, start)

    async def watch(
        self, from_block: int | None = None, *, poll_interval: float = 0.25
    ) -> AsyncIterator[ChainEvent]:
        """Yield decoded events forever, polling every ``poll_interval`` seconds when idle.

        On the embedded chain polls run inline (in-process, fast, and py-evm must not be used
        from two threads); on an RPC node they run in a worker thread. Cancellation: stops at
        the next poll or sleep; events already yielded are not repeated by a new cursor that
        starts at ``cursor.next_block``."""
        cursor = self.event_cursor(from_block)
        while True:
            if self._conn.tester is not None:
                batch = cursor.poll()
            else:
                batch = await trio.to_thread.run_sync(cursor.poll)
            for event in batch:
                yield event
            if not batch:
                await trio.sleep(poll_interval)


class EventCursor:
    """Remembers where a poll stopped: each :meth:`poll` returns the events of blocks mined
    since the last one (never twice). Synchronous; cheap on the embedded chain."""

    def __init__(self, chain: EventsMixin, from_block: int) -> None:
        self._chain = chain
        self.next_block = from_block

    def poll(self) -> list[ChainEvent]:
        """The decoded events of new blocks, in chain order."""
        latest = self._chain.block_number()
        if latest < self.next_block:
            return []
        events = self._chain.events(self.next_block, latest)
        self.next_block = latest + 1
        return events

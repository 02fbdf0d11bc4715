"""Fetching a blob from one or several holders into the local store.

Up to ``max_parallel_holders`` holders are worked at once; each gets its own bulk stream with
at most ``BlobConfig.chunks_in_flight`` chunk requests outstanding (the flow control), and
takes the lowest chunk nobody is fetching, so several holders share the work. Every chunk is
checked against the blob root on arrival (:class:`FetchPlan`) and written to the store's
partial file, so memory stays bounded and a dropped stream resumes where it stopped. A holder
that sends a wrong chunk is banned for that blob (for this fetch and later ones); one that
refuses ``NOT_HELD`` is dropped at once; one that stalls longer than ``stall_timeout`` or
breaks ``max_attempts`` times is given up and the next holder takes its place.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import trio

from ._blob_buffers import BufferPool
from ._blob_id import BlobId, checked_leaf
from ._blob_io import close_quietly, read_frame, send_bytes
from ._blob_partial import PartialBlob
from ._blob_plan import FetchPlan
from ._blob_protocol import (
    Chunk,
    Frame,
    FrameReader,
    Get,
    Ready,
    Refusal,
    Refuse,
    Want,
    chunk_frame_limit,
    encode,
)
from ._blob_serve import SPARE_BUFFERS, BlobConfig
from ._blobs import BlobStore
from ._errors import BlobProtocolError, BlobUnavailable, PeerUnreachable
from ._identity import PeerId
from ._stats import Counters
from ._transport import BulkStream, BulkTransport

logger = logging.getLogger("axl.blobs")

_BAN_MEMORY = 1024
_REFILL_FRACTION = 0.5
_CLOSING = 64  # finished streams waiting for the closer task; beyond that, closed inline


class _GiveUp(Exception):
    """This holder is done for this fetch (the reason is the message)."""


@dataclass
class _Fetch:
    blob_id: BlobId
    plan: FetchPlan[PeerId]
    partial: PartialBlob
    changed: trio.Event = field(default_factory=trio.Event)
    reasons: dict[str, str] = field(default_factory=dict)

    def signal(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


@dataclass
class BlobFetcher:
    """Runs fetches for one node; remembers which peers served a blob wrongly."""

    store: BlobStore
    transport: BulkTransport
    config: BlobConfig
    stats: Counters
    banned: OrderedDict[BlobId, set[PeerId]] = field(default_factory=OrderedDict)
    _running: dict[BlobId, trio.Event] = field(default_factory=dict)
    # written chunks' frame buffers, for the next frames of this fetch and of later ones
    _buffers: BufferPool = field(default_factory=lambda: BufferPool(SPARE_BUFFERS))
    # finished streams, closed by :meth:`close_streams` (while it runs) after the fetch returns
    _closing: tuple[trio.MemorySendChannel[BulkStream], trio.MemoryReceiveChannel[BulkStream]] = (
        field(default_factory=lambda: trio.open_memory_channel[BulkStream](_CLOSING))
    )
    _closer_running: bool = False

    async def close_streams(self) -> None:
        """Close the streams of finished fetches, so that a fetch returns once its blob is
        committed instead of after its stream's close (a frame each way, ~0.4 ms per fetch
        measured over libp2p). Runs until cancelled; without it, fetches close inline."""
        receive = self._closing[1]
        self._closer_running = True
        try:
            async for stream in receive:
                # one scheduling round first: the fetch that handed it over returns before
                await trio.lowlevel.checkpoint()
                await close_quietly(stream)
        finally:
            self._closer_running = False
            while True:  # shielded and bounded, like every close
                try:
                    stream = receive.receive_nowait()
                except trio.WouldBlock:
                    break
                await close_quietly(stream)

    async def _close(self, stream: BulkStream) -> None:
        if self._closer_running:
            try:
                self._closing[0].send_nowait(stream)
                return
            except trio.WouldBlock:
                pass
        await close_quietly(stream)

    async def fetch(
        self, blob_id: BlobId, from_peers: Iterable[PeerId], *, timeout: float | None = None
    ) -> BlobId:
        """Fetch ``blob_id`` into the store (no-op when held) and return it.

        Raises :class:`BlobUnavailable` (with each holder's reason) when no holder delivers it
        (or ``timeout`` passes), :class:`StoreFull` when there is no room.
        """
        while blob_id in self._running:  # one fetch per blob; later callers share it
            await self._running[blob_id].wait()
        if self.store.has(blob_id):
            await trio.lowlevel.checkpoint()
            return blob_id
        done = self._running[blob_id] = trio.Event()
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                return await self._fetch(blob_id, list(dict.fromkeys(from_peers)))
            raise BlobUnavailable(f"fetching {blob_id} timed out after {timeout} s")
        finally:
            del self._running[blob_id]
            done.set()

    async def _fetch(self, blob_id: BlobId, holders: list[PeerId]) -> BlobId:
        partial = self.store.begin(blob_id)
        try:
            banned = self.banned.get(blob_id, set())
            fetch = _Fetch(blob_id, FetchPlan(blob_id, partial.have), partial)
            for peer in holders:
                if peer in banned:
                    fetch.reasons[str(peer)] = "banned"
            queue = [p for p in holders if p not in banned]
            if not fetch.plan.done:
                async with trio.open_nursery() as nursery:
                    for _ in range(min(self.config.max_parallel_holders, len(queue))):
                        nursery.start_soon(self._slot, fetch, queue)
            if not fetch.plan.done:
                raise BlobUnavailable(
                    f"no holder delivered {blob_id}: "
                    + (", ".join(f"{p[:12]}: {r}" for p, r in fetch.reasons.items()) or "none"),
                    fetch.reasons,
                )
            committed = partial.commit()
            self.stats.inc("blob.fetched")
            return committed
        finally:
            partial.close()

    async def _slot(self, fetch: _Fetch, queue: list[PeerId]) -> None:
        while queue and not fetch.plan.done:
            holder = queue.pop(0)
            try:
                await self._work_holder(fetch, holder)
            except _GiveUp as exc:
                fetch.reasons[str(holder)] = str(exc)
                logger.info("gave up %s for %s: %s", holder.short(), fetch.blob_id, exc)
            finally:
                fetch.plan.release(holder)
                fetch.signal()

    def _ban(self, fetch: _Fetch, holder: PeerId, reason: str) -> _GiveUp:
        fetch.plan.ban(holder, reason)
        self.banned.setdefault(fetch.blob_id, set()).add(holder)
        self.banned.move_to_end(fetch.blob_id)
        while len(self.banned) > _BAN_MEMORY:
            self.banned.popitem(last=False)
        self.stats.inc("blob.banned." + reason)
        return _GiveUp(reason)

    async def _work_holder(self, fetch: _Fetch, holder: PeerId) -> None:
        failures = 0
        while not fetch.plan.done:
            if fetch.plan.remaining and fetch.plan.outstanding(holder) == 0:
                probe = fetch.plan.claim(holder)
                if probe is None:  # everything left is with other holders: wait for news
                    await fetch.changed.wait()
                    continue
                fetch.plan.release(holder)
            try:
                await self._session(fetch, holder)
            except PeerUnreachable as exc:
                failures += 1
                self.stats.inc("blob.fetch.dropped")
                fetch.plan.release(holder)
                fetch.signal()
                if failures >= self.config.max_attempts:
                    raise _GiveUp(f"unreachable: {exc}") from None
                await trio.sleep(self.config.retry_backoff * failures)
            except trio.TooSlowError:
                self.stats.inc("blob.fetch.stalled")
                raise _GiveUp("stalled") from None
            except BlobProtocolError as exc:
                raise self._ban(fetch, holder, "protocol_error") from exc

    async def _session(self, fetch: _Fetch, holder: PeerId) -> None:
        """One bulk stream to ``holder``: returns when the plan is done or nothing is left for
        this holder; raises PeerUnreachable, TooSlowError, BlobProtocolError or _GiveUp."""
        config, plan = self.config, fetch.plan
        with trio.fail_after(config.open_timeout):
            stream = await self.transport.open_bulk(holder)
        try:
            reader = FrameReader(chunk_frame_limit(fetch.blob_id), pool=self._buffers)
            # WANT and the first GETs go out together; READY (or a refusal) comes first back
            await self._pump(fetch, holder, stream, reader, encode(Want(fetch.blob_id)))
        finally:
            plan.release(holder)
            await self._close(stream)

    def _refused(self, fetch: _Fetch, holder: PeerId, code: Refusal) -> _GiveUp:
        self.stats.inc("blob.fetch.refused." + code.name.lower())
        if code is Refusal.NOT_HELD:
            fetch.plan.ban(holder, "not_held")
        return _GiveUp("refused: " + code.name.lower())

    async def _pump(
        self,
        fetch: _Fetch,
        holder: PeerId,
        stream: BulkStream,
        reader: FrameReader,
        want: bytes,
    ) -> None:
        # A reader task keeps draining the stream (so the transport's flow-control window keeps
        # opening) while chunks are checked and written; at most ``window`` frames wait.
        window = self.config.chunks_in_flight(fetch.blob_id)
        send, receive = trio.open_memory_channel[Frame | None | Exception](window)
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_frames, stream, reader, send)
            try:
                await self._process(fetch, holder, stream, reader, receive, want)
            except Exception as exc:  # raised below, outside the nursery: not in a group
                error = exc
            finally:
                nursery.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _process(
        self,
        fetch: _Fetch,
        holder: PeerId,
        stream: BulkStream,
        reader: FrameReader,
        frames: trio.MemoryReceiveChannel[Frame | Exception | None],
        want: bytes,
    ) -> None:
        plan = fetch.plan
        ready = False
        pending = [want]
        held: list[Frame | Exception | None] = []  # a frame taken early that is no chunk
        window = self.config.chunks_in_flight(fetch.blob_id)
        refill_below = window - max(1, int(window * _REFILL_FRACTION))
        while True:
            # requests go out in batches (half a window at a time): each write on the stream
            # costs a transport frame there and a window update back, whatever its size
            if plan.outstanding(holder) <= refill_below:
                while plan.outstanding(holder) < window:
                    index = plan.claim(holder)
                    if index is None:
                        break
                    pending.append(encode(Get(index)))
            if pending:  # one stream write for every request due
                try:
                    await send_bytes(stream, b"".join(pending))
                except PeerUnreachable:
                    await self._refusal_left(fetch, holder, frames)
                    raise
                pending.clear()
            if plan.outstanding(holder) == 0:
                return
            if held:
                frame = held.pop()
            else:
                with trio.fail_after(self.config.stall_timeout):
                    frame = await frames.receive()
            if isinstance(frame, Exception):
                raise frame
            if not ready and isinstance(frame, Ready):
                ready = True
                continue
            if frame is None:
                raise PeerUnreachable("the holder ended the stream")
            if isinstance(frame, Refuse):
                raise self._refused(fetch, holder, frame.code)
            if not ready or not isinstance(frame, Chunk):
                raise BlobProtocolError(f"unexpected {type(frame).__name__} frame")
            # the chunks already waiting are checked together: one worker-thread hop
            batch = [frame]
            while len(batch) < window:
                try:
                    more = frames.receive_nowait()
                except trio.WouldBlock:
                    break
                if not isinstance(more, Chunk):
                    held.append(more)
                    break
                batch.append(more)
            for chunk in batch:
                if not plan.expects(holder, chunk.index):
                    raise self._ban(fetch, holder, "unrequested_chunk")
            # hash, check and write off the event loop (hashlib releases the GIL)
            if self.config.worker_threads:
                leaves = await trio.to_thread.run_sync(_check_and_write, fetch.partial, batch)
            else:
                leaves = _check_and_write(fetch.partial, batch)
            for chunk, leaf in zip(batch, leaves, strict=True):
                if not plan.settle(holder, chunk.index, leaf):
                    plan.banned.pop(holder)
                    raise self._ban(fetch, holder, "wrong_chunk")
                assert leaf is not None
                fetch.partial.record(chunk.index, leaf)
                reader.recycle(chunk.data)  # written: its buffer takes the next frame
                self.stats.inc("blob.chunks_fetched")
            if plan.done:
                fetch.signal()
                return

    async def _refusal_left(
        self,
        fetch: _Fetch,
        holder: PeerId,
        frames: trio.MemoryReceiveChannel[Frame | Exception | None],
    ) -> None:
        """The holder closed the stream while we were writing: if it said why before closing
        (a refusal), raise that instead of a plain drop."""
        with trio.move_on_after(1.0):
            while True:
                frame = await frames.receive()
                if isinstance(frame, Refuse):
                    raise self._refused(fetch, holder, frame.code)
                if frame is None or isinstance(frame, Exception):
                    return


async def _read_frames(
    stream: BulkStream,
    reader: FrameReader,
    out: trio.MemorySendChannel[Frame | Exception | None],
) -> None:
    """Forward the stream's frames, then None at its end or the error that ended it."""
    while True:
        try:
            frame = await read_frame(stream, reader)
        except (PeerUnreachable, BlobProtocolError) as exc:
            await out.send(exc)
            return
        await out.send(frame)
        if frame is None:
            return


def _check_and_write(partial: PartialBlob, chunks: list[Chunk]) -> list[bytes | None]:
    """Each chunk's leaf after writing it, up to the first that fails its check (None, not
    written; the rest are neither checked nor written)."""
    leaves: list[bytes | None] = []
    for chunk in chunks:
        leaf = checked_leaf(partial.blob_id, chunk.index, chunk.data, chunk.proof)
        leaves.append(leaf)
        if leaf is None:
            return leaves + [None] * (len(chunks) - len(leaves))
        partial.write_bytes(chunk.index, chunk.data, leaf)
    return leaves

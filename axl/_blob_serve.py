"""Serving offered blobs on inbound bulk streams, within upload budgets.

A stream opened by a peer gets one ``WANT``; a blob that is not held, not offered, or not
offered to that peer is refused with ``NOT_HELD`` at once. Then every ``GET`` is answered with
the chunk and its proof, after the per-peer and global token buckets allow it (a wait longer
than ``budget.max_wait`` is refused with ``OVER_BUDGET``). Streams per peer and in total are
capped (``BUSY``); a stream idle longer than ``idle_timeout`` (or whose reader stops reading for
that long) is closed; any protocol violation closes the stream and is counted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import trio

from ._blob_budget import UploadBudget
from ._blob_buffers import BufferPool
from ._blob_id import BlobId
from ._blob_io import close_quietly, read_frame, send_bytes, write_frame
from ._blob_out import OutFrames
from ._blob_protocol import (
    REQUEST_FRAME_LIMIT,
    FrameReader,
    Get,
    Ready,
    Refusal,
    Refuse,
    Want,
    chunk_header,
)
from ._blobs import BlobStore
from ._errors import BlobNotHeld, BlobProtocolError, CorruptBlob, PeerUnreachable, TransportClosed
from ._identity import PeerId
from ._stats import Counters
from ._transport import BulkStream, BulkTransport

logger = logging.getLogger("axl.blobs")

MAX_WRITE = 1 << 20
SPARE_BUFFERS = 4  # outgoing frame buffers a holder keeps between streams (~1 MiB each)


@dataclass(frozen=True)
class BlobConfig:
    """Limits of blob serving and fetching. Times in seconds, rates in bytes per second.

    A fetch asks each holder for at most :meth:`chunks_in_flight` chunks at once (``window``
    chunks, and no more than ``window_bytes`` of them, but at least one), and holds at most
    ``max_parallel_holders * (chunks_in_flight + 2)`` chunks in memory.
    """

    window: int = 8
    window_bytes: int = 2 << 20
    max_parallel_holders: int = 4
    stall_timeout: float = 10.0
    open_timeout: float = 10.0
    max_attempts: int = 3
    retry_backoff: float = 0.2
    per_peer_rate: float = math.inf
    per_peer_burst: float = 8 << 20
    global_rate: float = math.inf
    global_burst: float = 32 << 20
    max_budget_wait: float = 2.0
    max_streams_per_peer: int = 8
    max_streams: int = 128
    idle_timeout: float = 30.0
    worker_threads: bool = False
    """Hash and do disk I/O of chunks in worker threads. Off by default: SHA-256 takes ~0.75 ms
    per MiB and page-cache I/O less, less than a thread hop costs (measured in
    ``python -m benchmarks.blobs --ab-threads``); turn on where disks are slow. Leave off
    under ``trio.testing.MockClock``, where a thread's real time would count as idle time."""

    def __post_init__(self) -> None:
        if self.window < 1 or self.max_parallel_holders < 1 or self.max_attempts < 1:
            raise ValueError("window, max_parallel_holders and max_attempts are >= 1")
        if self.window_bytes < 0:
            raise ValueError("window_bytes is >= 0")

    def chunks_in_flight(self, blob_id: BlobId) -> int:
        """Chunk requests a fetch of ``blob_id`` keeps outstanding per holder."""
        return max(1, min(self.window, self.window_bytes >> blob_id.chunk_shift))


@dataclass
class BlobServer:
    """Answers bulk streams from the store's offered blobs."""

    store: BlobStore
    config: BlobConfig
    stats: Counters
    offers: dict[BlobId, frozenset[PeerId] | None] = field(default_factory=dict)
    budget: UploadBudget = field(init=False)
    _unmetered: bool = field(init=False)
    streams: dict[PeerId, int] = field(default_factory=dict)
    _buffers: BufferPool = field(default_factory=lambda: BufferPool(SPARE_BUFFERS))

    def __post_init__(self) -> None:
        c = self.config
        self.budget = UploadBudget(
            c.per_peer_rate, c.per_peer_burst, c.global_rate, c.global_burst, c.max_budget_wait
        )
        self._unmetered = math.isinf(c.per_peer_rate) and math.isinf(c.global_rate)

    def offer(self, blob_id: BlobId, to: Iterable[PeerId] | None = None) -> None:
        """Serve ``blob_id`` (to everyone, or only to ``to``); raises :class:`BlobNotHeld`."""
        if not self.store.has(blob_id):
            raise BlobNotHeld(f"{blob_id} is not in the store")
        self.offers[blob_id] = None if to is None else frozenset(to)

    def withdraw(self, blob_id: BlobId) -> None:
        self.offers.pop(blob_id, None)

    def _offered_to(self, blob_id: BlobId, peer: PeerId) -> bool:
        if blob_id not in self.offers:
            return False
        allowed = self.offers[blob_id]
        return (allowed is None or peer in allowed) and self.store.has(blob_id)

    async def serve(self, transport: BulkTransport) -> None:
        """Accept and answer bulk streams until the transport closes."""
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    peer, stream = await transport.accept_bulk()
                except TransportClosed:
                    return
                nursery.start_soon(self._serve_stream, peer, stream)

    async def _serve_stream(self, peer: PeerId, stream: BulkStream) -> None:
        total = sum(self.streams.values())
        open_here = self.streams.get(peer, 0)
        self.streams[peer] = open_here + 1
        try:
            if open_here >= self.config.max_streams_per_peer or total >= self.config.max_streams:
                self.stats.inc("blob.refused.busy")
                await write_frame(stream, Refuse(Refusal.BUSY))
                return
            await self._answer(peer, stream)
        except PeerUnreachable:
            self.stats.inc("blob.serve.dropped")
        except BlobProtocolError as exc:
            self.stats.inc("blob.serve.protocol_error")
            logger.info("bulk stream from %s broke the protocol: %s", peer.short(), exc)
        except Exception:  # a local failure (disk, ...) must not take the node down
            self.stats.inc("blob.serve.error")
            logger.exception("serving a bulk stream from %s failed", peer.short())
        finally:
            self.streams[peer] -= 1
            if not self.streams[peer]:
                del self.streams[peer]
            await close_quietly(stream)

    async def _answer(self, peer: PeerId, stream: BulkStream) -> None:
        reader = FrameReader(REQUEST_FRAME_LIMIT)
        idle = self.config.idle_timeout
        first = None
        with trio.move_on_after(idle):
            first = await read_frame(stream, reader)
        if not isinstance(first, Want):
            if first is not None:
                raise BlobProtocolError(f"expected WANT, got {type(first).__name__}")
            return
        blob_id = first.blob_id
        if not self._offered_to(blob_id, peer):
            self.stats.inc("blob.refused.not_held")
            await write_frame(stream, Refuse(Refusal.NOT_HELD))
            return
        # READY goes out with the first answers when requests came with the WANT (as a
        # fetcher sends them): one stream write less per fetch
        out = OutFrames(self._buffers, answer_bytes(blob_id, metered=not self._unmetered))
        try:
            if reader.has_frame:
                out.add(Ready())
            else:
                await write_frame(stream, Ready())
            while await self._answer_batch(peer, stream, reader, blob_id, out):
                pass
        finally:
            out.close()

    async def _answer_batch(
        self, peer: PeerId, stream: BulkStream, reader: FrameReader, blob_id: BlobId, out: OutFrames
    ) -> bool:
        """Answer the next request and every further one already received, up to
        ``MAX_WRITE`` bytes, in one stream write after what ``out`` holds (each write costs
        the transport a frame with its own small tail); False when the stream is done. A
        request that breaks the protocol ends the stream without the answers gathered before
        it."""
        size = 0
        # with an upload budget, one chunk per write: a chunk never waits on the next's budget
        limit = MAX_WRITE if self._unmetered else 0
        more = True
        while True:
            length = await self._answer_one(peer, stream, reader, blob_id, out)
            if length is None:
                more = False
                break
            size += length
            if size >= limit or not reader.has_frame:
                break
        if out.size:
            try:
                with trio.fail_after(self.config.idle_timeout):  # a fetcher that stops
                    await send_bytes(stream, out.view())  # reading holds no slot
            except trio.TooSlowError:
                self.stats.inc("blob.serve.write_timeout")
                return False
            self.stats.inc("blob.chunks_served", out.chunks)
            out.clear()
        return more

    async def _answer_one(
        self, peer: PeerId, stream: BulkStream, reader: FrameReader, blob_id: BlobId, out: OutFrames
    ) -> int | None:
        """Read one request and add its answer to ``out``: the chunk's length, or None when the
        stream is done (it ended, or a refusal was added)."""
        frame = None
        with trio.move_on_after(self.config.idle_timeout):
            frame = await read_frame(stream, reader)
        if frame is None:
            return None
        if not isinstance(frame, Get) or frame.index >= blob_id.n_chunks:
            self.stats.inc("blob.refused.bad_request")
            out.add(Refuse(Refusal.BAD_REQUEST))
            return None
        length = blob_id.chunk_length(frame.index)
        wait = self.budget.reserve(peer, length, trio.current_time())
        if wait is None:
            self.stats.inc("blob.refused.over_budget")
            out.add(Refuse(Refusal.OVER_BUDGET))
            return None
        if wait > 0:
            await trio.sleep(wait)
        if not self._offered_to(blob_id, peer):
            out.add(Refuse(Refusal.NOT_HELD))
            return None
        try:
            proof = self.store.chunk_proof(blob_id, frame.index)
            with out.chunk(frame.index, proof, length) as data:
                try:
                    await self.store.read_chunk_into(
                        blob_id, frame.index, data, in_thread=self.config.worker_threads
                    )
                except BaseException:
                    out.drop_last_chunk(length, proof)
                    raise
        except (BlobNotHeld, CorruptBlob) as exc:
            self.stats.inc("blob.refused.not_held")
            logger.warning("cannot serve %s: %s", blob_id, exc)
            out.add(Refuse(Refusal.NOT_HELD))
            return None
        return length


def answer_bytes(blob_id: BlobId, *, metered: bool) -> int:
    """The most one stream write of answers to ``blob_id`` holds: chunks (one when
    ``metered``) until ``MAX_WRITE`` bytes of data are reached, each with its header and
    proof, and one small frame. A holder's frame buffer is this large from the start, so that
    it is reused by the next stream instead of grown anew (``BufferPool`` only hands out a
    buffer of about the size asked for)."""
    proof = bytes(32 * (blob_id.n_chunks - 1).bit_length())
    frame = len(chunk_header(0, proof, 0)) + blob_id.chunk_size
    chunks = 1 if metered else -(-MAX_WRITE // blob_id.chunk_size)
    return min(chunks, blob_id.n_chunks) * frame + 64


async def refuse_all(transport: BulkTransport) -> None:
    """For a node without a blob store: answer every bulk stream ``NOT_HELD`` at once."""
    async with trio.open_nursery() as nursery:
        while True:
            try:
                _, stream = await transport.accept_bulk()
            except TransportClosed:
                return
            nursery.start_soon(_refuse_one, stream)


async def _refuse_one(stream: BulkStream) -> None:
    try:
        with trio.move_on_after(5.0):
            await write_frame(stream, Refuse(Refusal.NOT_HELD))
    except PeerUnreachable:
        pass
    finally:
        await close_quietly(stream)

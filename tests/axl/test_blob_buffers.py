"""Frame buffers are reused: after a first fetch, fetching again allocates none, on either end."""

from __future__ import annotations

from pathlib import Path

import pytest

from axl._blob_buffers import BufferPool
from axl._blob_id import BlobId
from axl._blob_serve import MAX_WRITE, answer_bytes
from tests.axl.test_blob_fetch import cluster, store_of


def test_pool_reuses_a_buffer_of_about_the_size_asked_for() -> None:
    pool = BufferPool(2)
    small, large = pool.take(1000), pool.take(1 << 20)
    assert pool.created == 2
    pool.give(small)
    pool.give(large)
    assert pool.take(1 << 20) is large and pool.take(900) is small
    pool.give(large)
    assert pool.take(100) is not large  # far too large for the request: kept for a large one
    assert pool.created == 3


@pytest.mark.parametrize("shift", [16, 17, 20])
@pytest.mark.parametrize("metered", [False, True])
def test_answer_bytes_hold_the_largest_write(shift: int, metered: bool) -> None:
    blob_id = BlobId(bytes(32), (300 << shift) - 5, shift)
    chunks = 1 if metered else -(-MAX_WRITE // blob_id.chunk_size)
    assert answer_bytes(blob_id, metered=metered) >= chunks * blob_id.chunk_size
    small = BlobId(bytes(32), 3 << shift, shift)  # fewer chunks than one write may hold
    assert answer_bytes(small, metered=metered) < 4 << shift


@pytest.mark.parametrize("shift", [16, 17])
async def test_fetching_again_allocates_no_frame_buffer(tmp_path: Path, shift: int) -> None:
    """A fresh chunk-sized buffer costs the kernel its page faults: the fetcher's frames and
    the holder's answers reuse their pools' buffers, chunk after chunk and stream after
    stream (40 chunks each time; ``created`` counts the buffers a pool had to allocate)."""
    size = (40 << shift) - 123
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    async with cluster(tmp_path, 2) as c:
        holder, fetcher = c.buses[0].blobs, c.buses[1].blobs
        assert holder is not None and fetcher is not None and fetcher.fetcher is not None
        blob_id = holder.store.put_bytes(data, chunk_shift=shift)
        c.buses[0].offer(blob_id)
        await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
        created = fetcher.fetcher._buffers.created, holder.server._buffers.created
        assert created[0] >= 1 and created[1] >= 1
        for _ in range(2):
            store_of(c.buses[1]).delete(blob_id)
            await c.buses[1].fetch(blob_id, from_peers=[c.identities[0].peer_id])
            assert store_of(c.buses[1]).read_bytes(blob_id, max_size=1 << 24) == data
        assert (fetcher.fetcher._buffers.created, holder.server._buffers.created) == created

"""The on-disk blob store: budget, pinning, eviction, corruption, partial fetches."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import axl._blob_partial as _blob_partial
from axl import BlobError, BlobNotHeld, BlobStore, CorruptBlob, StoreFull, blob_id_of
from axl._blob_id import verify_chunk

SHIFT = 10


def data(n: int, seed: int = 1) -> bytes:
    return bytes((i * seed + seed) % 251 for i in range(n))


def test_put_read_and_proofs(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=1 << 20)
    payload = data(5000)
    blob_id = store.put_bytes(payload, chunk_shift=SHIFT)
    assert blob_id == blob_id_of(payload, SHIFT)
    assert store.read_bytes(blob_id, max_size=10_000) == payload
    for index in range(blob_id.n_chunks):
        chunk, proof = store.read_chunk(blob_id, index)
        assert verify_chunk(blob_id, index, chunk, proof)
    with pytest.raises(BlobError):
        store.read_bytes(blob_id, max_size=100)


def test_put_file_streams_the_same_id(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(data(3000, 3))
    store = BlobStore(tmp_path / "store", max_bytes=1 << 20)
    assert store.put_file(source, chunk_shift=SHIFT) == blob_id_of(data(3000, 3), SHIFT)


def test_budget_evicts_least_recently_used_unpinned(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=3000)
    a = store.put_bytes(data(1000, 1), chunk_shift=SHIFT)
    b = store.put_bytes(data(1000, 2), chunk_shift=SHIFT, pin=True)
    c = store.put_bytes(data(1000, 3), chunk_shift=SHIFT)
    store.read_chunk(a, 0)  # a is now more recently used than c
    d = store.put_bytes(data(1000, 4), chunk_shift=SHIFT)
    assert store.has(a) and store.has(b) and store.has(d) and not store.has(c)
    assert store.used_bytes <= store.max_bytes


def test_store_full_when_pins_hold_the_budget(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=2000)
    store.put_bytes(data(1000, 1), chunk_shift=SHIFT, pin=True)
    store.put_bytes(data(900, 2), chunk_shift=SHIFT, pin=True)
    with pytest.raises(StoreFull):
        store.put_bytes(data(500, 3), chunk_shift=SHIFT)
    assert len(store.blobs()) == 2  # nothing was evicted by the failed put


def test_pins_survive_reopening(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=10_000)
    a = store.put_bytes(data(100), chunk_shift=SHIFT, pin=True)
    again = BlobStore(tmp_path, max_bytes=10_000)
    assert again.has(a) and again.is_pinned(a)
    again.unpin(a)
    assert not BlobStore(tmp_path, max_bytes=10_000).is_pinned(a)


def test_a_flipped_byte_on_disk_is_detected_and_dropped(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=1 << 20)
    blob_id = store.put_bytes(data(4000), chunk_shift=SHIFT)
    path = store.file_path(blob_id)
    raw = bytearray(path.read_bytes())
    raw[2500] ^= 1
    path.write_bytes(bytes(raw))
    store.read_chunk(blob_id, 0)  # other chunks still read
    with pytest.raises(CorruptBlob):
        store.read_chunk(blob_id, 2)
    assert not store.has(blob_id) and store.dropped_corrupt == 1
    with pytest.raises(BlobNotHeld):
        store.read_chunk(blob_id, 0)


def test_corrupt_leaves_or_truncated_data_are_dropped_on_open(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=1 << 20)
    a = store.put_bytes(data(3000, 1), chunk_shift=SHIFT)
    b = store.put_bytes(data(3000, 2), chunk_shift=SHIFT)
    leaves = Path(str(store.file_path(a)) + ".leaves")
    leaves.write_bytes(leaves.read_bytes()[:-1] + b"\x00")
    path_b = store.file_path(b)
    path_b.write_bytes(path_b.read_bytes()[:-5])
    (tmp_path / "data" / "not-a-blob").write_bytes(b"junk")
    again = BlobStore(tmp_path, max_bytes=1 << 20)
    assert again.blobs() == [] and again.dropped_corrupt == 3


def test_partial_resumes_and_rechecks_after_reopen(tmp_path: Path) -> None:
    payload = data(5000, 5)
    blob_id = blob_id_of(payload, SHIFT)
    source = BlobStore(tmp_path / "src", max_bytes=1 << 20)
    source.put_bytes(payload, chunk_shift=SHIFT)
    store = BlobStore(tmp_path / "dst", max_bytes=1 << 20)
    partial = store.begin(blob_id)
    with pytest.raises(BlobError):
        store.begin(blob_id)  # one fetch at a time
    for index in (0, 3):
        partial.write(index, source.read_chunk(blob_id, index)[0])
    with pytest.raises(BlobError):
        partial.commit()
    partial.close()
    assert store.used_bytes == blob_id.size  # the parked partial still counts
    # damage chunk 3 on disk: it must be fetched again after the restart
    part_file = tmp_path / "dst" / "partial" / str(blob_id)
    raw = bytearray(part_file.read_bytes())
    raw[3 * 1024] ^= 0xFF
    part_file.write_bytes(bytes(raw))
    store = BlobStore(tmp_path / "dst", max_bytes=1 << 20)
    partial = store.begin(blob_id)
    assert partial.have == {0}
    for index in range(1, blob_id.n_chunks):
        partial.write(index, source.read_chunk(blob_id, index)[0])
    assert partial.commit() == blob_id
    partial.close()
    assert store.read_bytes(blob_id, max_size=1 << 20) == payload
    assert store.used_bytes == blob_id.size


def test_a_large_fetch_drops_its_file_behind_it_and_keeps_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drop-behind (page-cache advice for large fetches, shrunk here to 3 KiB windows) advises
    whole windows behind the chunk just written, and the committed blob has exactly its bytes,
    chunks written in any order and across a restart included."""
    monkeypatch.setattr(_blob_partial, "DROP_BEHIND", 3 * 1024)
    monkeypatch.setattr(_blob_partial, "DROP_BEHIND_MIN", 12 * 1024)
    advice: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, what: int) -> None:
        advice.append((offset, length, what))
        real(fd, offset, length, what)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    payload = data(40_000, 3)
    blob_id = blob_id_of(payload, SHIFT)
    source = BlobStore(tmp_path / "src", max_bytes=1 << 20)
    source.put_bytes(payload, chunk_shift=SHIFT)
    store = BlobStore(tmp_path / "dst", max_bytes=1 << 20)
    order = list(range(blob_id.n_chunks))
    random.Random(7).shuffle(order)
    partial = store.begin(blob_id)
    assert partial.drop_behind
    for index in order[:20]:
        partial.write(index, source.read_chunk(blob_id, index)[0])
    partial.close()
    store = BlobStore(tmp_path / "dst", max_bytes=1 << 20)  # a restart
    partial = store.begin(blob_id)
    assert partial.have == set(order[:20])
    for index in order[20:]:
        partial.write(index, source.read_chunk(blob_id, index)[0])
    assert partial.commit() == blob_id
    assert store.read_bytes(blob_id, max_size=1 << 20) == payload
    assert advice and all(what == os.POSIX_FADV_DONTNEED for _, _, what in advice)
    assert all(offset % (3 * 1024) == 0 and length == 3 * 1024 for offset, length, _ in advice)
    small = BlobStore(tmp_path / "small", max_bytes=1 << 20).begin(blob_id_of(data(5000), SHIFT))
    assert not small.drop_behind  # below DROP_BEHIND_MIN: left to the page cache
    small.close()


def test_reservations_count_against_the_budget(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=3000)
    big = blob_id_of(data(2500), SHIFT)
    partial = store.begin(big)
    with pytest.raises(StoreFull):
        store.put_bytes(data(1000, 9), chunk_shift=SHIFT)
    partial.close()
    store.put_bytes(data(1000, 9), chunk_shift=SHIFT)  # evicts the parked partial
    assert not (tmp_path / "partial" / str(big)).exists()


async def test_put_file_async_matches_put_file(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(data(5000, 7))
    store = BlobStore(tmp_path / "store", max_bytes=6000)
    blob_id = await store.put_file_async(source, chunk_shift=SHIFT, pin=True)
    assert blob_id == blob_id_of(data(5000, 7), SHIFT) and store.is_pinned(blob_id)
    assert store.read_bytes(blob_id, max_size=10_000) == data(5000, 7)
    source.write_bytes(data(5000, 8))
    with pytest.raises(StoreFull):  # the pinned blob leaves no room
        await store.put_file_async(source, chunk_shift=SHIFT)
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_a_chunk_is_hashed_on_its_first_read_then_trusted_until_the_store_reopens(
    tmp_path: Path,
) -> None:
    store = BlobStore(tmp_path, max_bytes=1 << 20)
    blob_id = store.put_bytes(data(4000), chunk_shift=SHIFT)
    good = store.read_chunk(blob_id, 1)[0]  # hashed and found good
    path = store.file_path(blob_id)
    raw = bytearray(path.read_bytes())
    raw[1500] ^= 1  # chunk 1 altered after its first read
    path.write_bytes(bytes(raw))
    assert store.read_chunk(blob_id, 1)[0] != good  # not hashed again: a fetcher would ban us
    again = BlobStore(tmp_path, max_bytes=1 << 20)
    with pytest.raises(CorruptBlob):
        again.read_chunk(blob_id, 1)
    assert not again.has(blob_id) and again.dropped_corrupt == 1

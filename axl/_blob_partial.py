"""A fetch in progress: verified chunks written at their offsets, resumable after a restart;
and the store's side of it (reserving room, parking, committing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ._blob_id import BlobId, blob_id_from_leaves, leaf_hash
from ._errors import BlobError, CorruptBlob, StoreFull


class PartialOwner(Protocol):
    """What a partial blob needs from its store (``BlobStore``)."""

    def _partial_paths(self, blob_id: BlobId) -> tuple[Path, Path]: ...

    def _finish_partial(self, blob_id: BlobId, leaves: list[bytes]) -> None: ...

    def _park(self, blob_id: BlobId) -> None: ...


_ZERO_LEAF = bytes(32)

# Chunks go to the page cache in writes of at most this size. Larger writes get large folios,
# which on a VM that hands freed memory back to its host (free page reporting, ballooning)
# come from memory the host must fault in again: measured ~3 ms/MiB of kernel time for 1 MiB
# writes after the first ~100 MiB of a fetch, against ~0.2 ms/MiB for 256 KiB writes.
WRITE_PIECE = 1 << 18

# A fetched blob of at least DROP_BEHIND_MIN bytes is written back and dropped from the page
# cache behind the fetch, DROP_BEHIND bytes at a time (see ``PartialBlob.write_bytes``).
DROP_BEHIND = 32 << 20
DROP_BEHIND_MIN = 4 * DROP_BEHIND


class PartialBlob:
    """A blob being fetched: chunks are written as they are verified, in any order.

    What was written survives a dropped connection and a restart (resume with
    :meth:`BlobStore.begin`): each chunk's leaf is recorded after its bytes, and on reopening
    the chunks with a recorded leaf are checked again before they count as held.
    """

    def __init__(self, store: PartialOwner, blob_id: BlobId) -> None:
        self.store = store
        self.blob_id = blob_id
        self._closed = False
        data_path, leaves_path = store._partial_paths(blob_id)
        n = blob_id.n_chunks
        fresh = not (data_path.exists() and leaves_path.exists())
        self._data = open(data_path, "w+b" if fresh else "r+b")  # noqa: SIM115
        self._leaves_file = open(leaves_path, "w+b" if fresh else "r+b")  # noqa: SIM115
        self.leaves = [_ZERO_LEAF] * n
        self.have: set[int] = set()
        self.drop_behind = blob_id.size >= DROP_BEHIND_MIN and hasattr(os, "posix_fadvise")
        if fresh:
            self._data.truncate(blob_id.size)
            self._leaves_file.truncate(32 * n)
            return
        raw = self._leaves_file.read(32 * n)
        for index in range(n):
            leaf = raw[32 * index : 32 * index + 32]
            if len(leaf) < 32 or leaf == _ZERO_LEAF:
                continue
            self._data.seek(index << blob_id.chunk_shift)
            data = self._data.read(blob_id.chunk_length(index))
            if leaf_hash(data) == leaf:
                self.leaves[index] = leaf
                self.have.add(index)

    def write(self, index: int, data: bytes, leaf: bytes | None = None) -> None:
        """Record a chunk that was already verified against the root (``leaf``: its leaf, if
        the caller has it)."""
        leaf = leaf or leaf_hash(data)
        self.write_bytes(index, data, leaf)
        self.record(index, leaf)

    def write_bytes(self, index: int, data: bytes | memoryview, leaf: bytes) -> None:
        """The file part of :meth:`write`: the chunk's bytes, then its leaf (positional
        writes, so chunks may be written from worker threads in any order)."""
        fd = self._data.fileno()
        offset = index << self.blob_id.chunk_shift
        with memoryview(data) as view:
            for start in range(0, len(view), WRITE_PIECE):
                os.pwrite(fd, view[start : start + WRITE_PIECE], offset + start)
            end = offset + len(view)
        os.pwrite(self._leaves_file.fileno(), leaf, 32 * index)
        if self.drop_behind and end // DROP_BEHIND > offset // DROP_BEHIND:
            self._drop_behind(fd, end - end % DROP_BEHIND)

    @staticmethod
    def _drop_behind(fd: int, boundary: int) -> None:
        """A large fetch keeps little of its file in the page cache: each window of
        ``DROP_BEHIND`` bytes, once written past, is sent to storage (``POSIX_FADV_DONTNEED``
        starts writeback of dirty pages without waiting) and the one before it, written back
        by now, is dropped. The next writes then reuse those pages instead of taking fresh
        page cache for the whole blob, which on a VM that hands freed memory back to its host
        costs the kernel ~2 ms/MiB (measured: 1 GiB of 256 KiB writes after freeing 1 GiB,
        1.9 to 2.1 ms/MiB of system time; with this, 0.22 ms/MiB). Advice only: the bytes
        and their checks are unchanged (chunks written out of order or not yet written in a
        window stay cached until a later window's advice covers them, or not at all)."""
        os.posix_fadvise(fd, boundary - DROP_BEHIND, DROP_BEHIND, os.POSIX_FADV_DONTNEED)
        if boundary >= 2 * DROP_BEHIND:
            os.posix_fadvise(fd, boundary - 2 * DROP_BEHIND, DROP_BEHIND, os.POSIX_FADV_DONTNEED)

    def record(self, index: int, leaf: bytes) -> None:
        """The bookkeeping part of :meth:`write`."""
        self.leaves[index] = leaf
        self.have.add(index)

    @property
    def complete(self) -> bool:
        return len(self.have) == self.blob_id.n_chunks

    def commit(self) -> BlobId:
        """Move the complete blob into the store; raises :class:`BlobError` if incomplete."""
        if not self.complete:
            raise BlobError(
                f"{self.blob_id} is missing {self.blob_id.n_chunks - len(self.have)} chunks"
            )
        if (
            blob_id_from_leaves(self.leaves, self.blob_id.size, self.blob_id.chunk_shift)
            != self.blob_id
        ):
            raise CorruptBlob(f"the chunks written for {self.blob_id} do not add up to its root")
        self._close_files()  # not fsynced (see BlobStore._finish_partial)
        self.store._finish_partial(self.blob_id, self.leaves)
        return self.blob_id

    def _close_files(self) -> None:
        if not self._closed:
            self._closed = True
            self._data.close()
            self._leaves_file.close()

    def close(self) -> None:
        """Stop without committing: the partial files stay for a later resume."""
        if not self._closed:
            self._data.flush()
            self._leaves_file.flush()
        self._close_files()
        self.store._park(self.blob_id)


class _Store(PartialOwner, Protocol):
    """What :class:`PartialFetches` needs from the rest of ``BlobStore``."""

    _partial: Path
    _reserved: dict[BlobId, int]
    _parked: dict[BlobId, int]

    def make_room(self, needed: int, *, keep: BlobId | None = None) -> None: ...

    def _install(
        self,
        blob_id: BlobId,
        data_tmp: Path,
        leaves: list[bytes] | Path,
        pin: bool,
        durable: bool = True,
    ) -> None: ...


class PartialFetches:
    """``BlobStore``'s fetches in progress: each reserves the blob's full size while it runs,
    and its partial files are parked (kept, counted against the budget) when it stops."""

    def begin(self: _Store, blob_id: BlobId) -> PartialBlob:
        """Reserve room for ``blob_id`` and open (or resume) its partial file.

        Raises :class:`StoreFull`, or :class:`BlobError` if a fetch of it is already open.
        """
        if blob_id in self._reserved:
            raise BlobError(f"a fetch of {blob_id} is already in progress")
        parked = self._parked.pop(blob_id, None)  # resumed: its reservation counts it
        try:
            self.make_room(blob_id.size)
        except StoreFull:
            if parked is not None:
                self._parked[blob_id] = parked
            raise
        self._reserved[blob_id] = blob_id.size
        try:
            return PartialBlob(self, blob_id)
        except BaseException:
            self._reserved.pop(blob_id, None)
            raise

    def _partial_paths(self: _Store, blob_id: BlobId) -> tuple[Path, Path]:
        name = str(blob_id)
        return self._partial / name, self._partial / (name + ".leaves")

    def _finish_partial(self: _Store, blob_id: BlobId, leaves: list[bytes]) -> None:
        data, leaves_file = self._partial_paths(blob_id)
        self._reserved.pop(blob_id, None)
        # Not fsynced: a fetched blob can be fetched again, and one torn by a crash fails the
        # size check when the store opens or the hash on its first read, and is dropped. The
        # partial leaves file already holds every chunk's checked leaf (``leaves``): it is
        # renamed, not rewritten (and checked against the root on the blob's first read).
        self._install(blob_id, data, leaves_file if leaves_file.exists() else leaves, False, False)

    def _park(self: _Store, blob_id: BlobId) -> None:
        if (
            self._reserved.pop(blob_id, None) is not None
            and self._partial_paths(blob_id)[0].exists()
        ):
            self._parked[blob_id] = blob_id.size

    def discard_partial(self: _Store, blob_id: BlobId) -> None:
        """Delete a partial fetch's files (it cannot be resumed then)."""
        self._parked.pop(blob_id, None)
        for file in self._partial_paths(blob_id):
            file.unlink(missing_ok=True)

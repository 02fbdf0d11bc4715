"""A bounded on-disk store of content-addressed blobs (one per node).

Layout under the store's directory::

    data/<blob id>            the blob's bytes
    data/<blob id>.leaves     its chunk leaves (32 bytes each)
    pins/<blob id>            present while the blob is pinned
    partial/<blob id>         a fetch in progress: bytes at their offsets, and
    partial/<blob id>.leaves  the leaf of each chunk received (zeros where missing)
    tmp/                      files being written, renamed into place when complete

Every complete blob's leaves are checked against its id when the store opens, and each chunk
is checked against its leaf on its first read since then, so a file altered on disk is
detected (:class:`CorruptBlob`) and dropped; later reads of a chunk found good skip the hash
(a blob served to many fetchers is hashed once; a fetcher checks every chunk it receives
anyway, so a chunk altered after its first read only gets this holder banned for the blob).
The budget ``max_bytes`` covers complete blobs and the full size of fetches in progress;
making room evicts unpinned blobs, least recently used first, and raises :class:`StoreFull`
when pins and reservations leave no room. Writes are atomic (temporary file, fsync, rename).
The store is synchronous and not thread-safe: use it from one trio thread.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import trio

from ._blob_files import Entry, copy_hashed, fsync_dir, read_checked, read_checked_into
from ._blob_id import (
    DEFAULT_CHUNK_SHIFT,
    BlobHasher,
    BlobId,
    blob_id_from_leaves,
    make_proof,
    merkle_levels,
)
from ._blob_partial import PartialFetches
from ._errors import BlobError, BlobNotHeld, CorruptBlob, InvalidBlobId, StoreFull


class BlobStore(PartialFetches):
    """Blobs on disk under ``path``, at most ``max_bytes`` of them (see the module docs)."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._data = self.path / "data"
        self._pins = self.path / "pins"
        self._partial = self.path / "partial"
        self._tmp = self.path / "tmp"
        for d in (self._data, self._pins, self._partial, self._tmp):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
        self._entries: dict[BlobId, Entry] = {}
        self._levels: dict[BlobId, list[list[bytes]]] = {}
        self._reserved: dict[BlobId, int] = {}
        self._parked: dict[BlobId, int] = {}  # partial files of fetches not running now
        self.dropped_corrupt = 0
        self._load()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _load(self) -> None:
        for file in self._data.iterdir():
            if file.name.endswith(".leaves"):
                continue
            try:
                blob_id = BlobId.parse(file.name)
                self._read_levels(blob_id)
            except (InvalidBlobId, CorruptBlob, OSError):
                self._remove_files(file.name)
                self.dropped_corrupt += 1
                continue
            if file.stat().st_size != blob_id.size:
                self._remove_files(file.name)
                self.dropped_corrupt += 1
                continue
            pinned = (self._pins / file.name).exists()
            self._entries[blob_id] = Entry(blob_id, pinned, file.stat().st_mtime)
        for file in self._partial.iterdir():
            if file.name.endswith(".leaves"):
                continue
            try:
                self._parked[BlobId.parse(file.name)] = file.stat().st_size
            except (InvalidBlobId, OSError):
                file.unlink(missing_ok=True)

    def _remove_files(self, name: str) -> None:
        for file in (self._data / name, self._data / (name + ".leaves"), self._pins / name):
            file.unlink(missing_ok=True)

    @property
    def used_bytes(self) -> int:
        """Bytes of complete blobs, fetches in progress and partial files kept for a resume."""
        return (
            sum(e.blob_id.size for e in self._entries.values())
            + sum(self._reserved.values())
            + sum(self._parked.values())
        )

    def blobs(self) -> list[BlobId]:
        return list(self._entries)

    def has(self, blob_id: BlobId) -> bool:
        return blob_id in self._entries

    def is_pinned(self, blob_id: BlobId) -> bool:
        entry = self._entries.get(blob_id)
        return entry is not None and entry.pinned

    def _entry(self, blob_id: BlobId) -> Entry:
        entry = self._entries.get(blob_id)
        if entry is None:
            raise BlobNotHeld(f"{blob_id} is not in the store")
        entry.used = time.monotonic()
        return entry

    def pin(self, blob_id: BlobId) -> None:
        """Keep the blob until :meth:`unpin`; raises :class:`BlobNotHeld`."""
        entry = self._entry(blob_id)
        if not entry.pinned:
            (self._pins / str(blob_id)).touch()
            entry.pinned = True

    def unpin(self, blob_id: BlobId) -> None:
        """Make the blob evictable again (no effect if it is not held)."""
        entry = self._entries.get(blob_id)
        if entry is not None and entry.pinned:
            (self._pins / str(blob_id)).unlink(missing_ok=True)
            entry.pinned = False

    def delete(self, blob_id: BlobId) -> None:
        """Remove the blob (pinned or not); no effect if it is not held."""
        self._entries.pop(blob_id, None)
        self._levels.pop(blob_id, None)
        self._remove_files(str(blob_id))

    def make_room(self, needed: int, *, keep: BlobId | None = None) -> None:
        """Evict parked partial fetches, then unpinned blobs (least recently used first), until
        ``needed`` more bytes fit; raises :class:`StoreFull` (evicting nothing) when that is
        impossible."""
        free = self.max_bytes - self.used_bytes
        if needed <= free:
            return
        parked = [b for b in self._parked if b != keep]
        victims = sorted(
            (e for e in self._entries.values() if not e.pinned and e.blob_id != keep),
            key=lambda e: e.used,
        )
        evictable = sum(self._parked[b] for b in parked) + sum(e.blob_id.size for e in victims)
        if free + evictable < needed:
            raise StoreFull(
                f"need {needed} bytes, {free} free of {self.max_bytes}; pinned blobs and "
                "fetches in progress hold the rest"
            )
        for blob_id in parked:
            if needed <= free:
                return
            free += self._parked.pop(blob_id)
            self.discard_partial(blob_id)
        for entry in victims:
            if needed <= free:
                return
            self.delete(entry.blob_id)
            free += entry.blob_id.size

    # -- writing -------------------------------------------------------------------------------

    def _tmp_file(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self._tmp)
        return fd, Path(name)

    def _install(
        self,
        blob_id: BlobId,
        data_tmp: Path,
        leaves: list[bytes] | Path,
        pin: bool,
        durable: bool = True,
    ) -> None:
        """Rename a complete blob into ``data/`` (``durable``: and fsync the directory);
        ``leaves``: its leaves, or a file that holds them (renamed too)."""
        name = str(blob_id)
        if isinstance(leaves, Path):
            leaves_tmp = leaves
        else:
            fd, leaves_tmp = self._tmp_file()
            with os.fdopen(fd, "wb") as out:  # not fsynced: a torn leaves file fails its check
                out.write(b"".join(leaves))  # against the root when the store opens: dropped
        os.replace(leaves_tmp, self._data / (name + ".leaves"))
        os.replace(data_tmp, self._data / name)
        if durable:
            fsync_dir(self._data)
        self._entries[blob_id] = Entry(blob_id, False, time.monotonic())
        if pin:
            self.pin(blob_id)

    def put_bytes(
        self, data: bytes, *, chunk_shift: int = DEFAULT_CHUNK_SHIFT, pin: bool = False
    ) -> BlobId:
        """Store ``data``; returns its id. Raises :class:`StoreFull`."""
        hasher = BlobHasher(chunk_shift)
        hasher.update(data)
        blob_id = hasher.finish()
        if blob_id in self._entries:
            if pin:
                self.pin(blob_id)
            return blob_id
        self.make_room(len(data))
        fd, tmp = self._tmp_file()
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            self._install(blob_id, tmp, hasher.leaves, pin)
        finally:
            tmp.unlink(missing_ok=True)
        return blob_id

    def put_file(
        self,
        source: str | os.PathLike[str],
        *,
        chunk_shift: int = DEFAULT_CHUNK_SHIFT,
        pin: bool = False,
    ) -> BlobId:
        """Copy a file into the store (streaming, bounded memory); returns its id. Raises
        :class:`StoreFull`. Blocks while it copies: from trio, use :meth:`put_file_async`."""
        size = os.stat(source).st_size
        self.make_room(size)
        fd, tmp = self._tmp_file()
        try:
            hasher = copy_hashed(source, fd, chunk_shift)
            return self._adopt(hasher, tmp, pin)
        finally:
            tmp.unlink(missing_ok=True)

    async def put_file_async(
        self,
        source: str | os.PathLike[str],
        *,
        chunk_shift: int = DEFAULT_CHUNK_SHIFT,
        pin: bool = False,
    ) -> BlobId:
        """:meth:`put_file` with the copy and the hashing in a worker thread."""
        size = os.stat(source).st_size
        self.make_room(size)
        fd, tmp = self._tmp_file()
        try:
            hasher = await trio.to_thread.run_sync(copy_hashed, source, fd, chunk_shift)
            return self._adopt(hasher, tmp, pin)
        finally:
            tmp.unlink(missing_ok=True)

    def _adopt(self, hasher: BlobHasher, tmp: Path, pin: bool) -> BlobId:
        blob_id = hasher.finish()
        if blob_id in self._entries:
            if pin:
                self.pin(blob_id)
            return blob_id
        self.make_room(blob_id.size)  # again: the store may have filled meanwhile
        self._install(blob_id, tmp, hasher.leaves, pin)
        return blob_id

    # -- reading -------------------------------------------------------------------------------

    def _read_levels(self, blob_id: BlobId) -> list[list[bytes]]:
        levels = self._levels.get(blob_id)
        if levels is not None:
            return levels
        raw = (self._data / (str(blob_id) + ".leaves")).read_bytes()
        leaves = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        try:
            ok = (
                len(raw) % 32 == 0
                and blob_id_from_leaves(leaves, blob_id.size, blob_id.chunk_shift) == blob_id
            )
        except InvalidBlobId:
            ok = False
        if not ok:
            raise CorruptBlob(f"the leaves of {blob_id} do not match its root")
        levels = merkle_levels(leaves)
        if len(self._levels) >= 64:
            self._levels.pop(next(iter(self._levels)))
        self._levels[blob_id] = levels
        return levels

    def _corrupt(self, blob_id: BlobId, why: str) -> CorruptBlob:
        self.delete(blob_id)
        self.dropped_corrupt += 1
        return CorruptBlob(f"{blob_id} is corrupt on disk ({why}); dropped it")

    def read_chunk(self, blob_id: BlobId, index: int) -> tuple[bytes, bytes]:
        """Chunk ``index`` and its proof, checked against the stored leaf (hashed on its
        first read since the store opened; see the module docs).

        Raises :class:`BlobNotHeld`, :class:`CorruptBlob` (the blob is dropped) or IndexError.
        """
        path, leaf, proof = self._locate(blob_id, index)
        data, ok = read_checked(path, blob_id, index, leaf)
        return self._checked(blob_id, index, data, ok), proof

    def chunk_proof(self, blob_id: BlobId, index: int) -> bytes:
        """Chunk ``index``'s proof; raises as :meth:`read_chunk`."""
        return self._locate(blob_id, index)[2]

    async def read_chunk_into(
        self, blob_id: BlobId, index: int, out: memoryview, *, in_thread: bool = False
    ) -> None:
        """:meth:`read_chunk`'s data into ``out`` (exactly the chunk's length), no new buffer:
        a holder reuses one per stream. ``in_thread``: read and hash in a worker thread.
        Raises as :meth:`read_chunk`."""
        path, leaf, _ = self._locate(blob_id, index)
        if in_thread:
            ok = await trio.to_thread.run_sync(read_checked_into, path, blob_id, index, leaf, out)
        else:
            ok = read_checked_into(path, blob_id, index, leaf, out)
        self._checked(blob_id, index, None if ok is None else b"", bool(ok))

    async def read_chunk_async(self, blob_id: BlobId, index: int) -> tuple[bytes, bytes]:
        """:meth:`read_chunk` with the disk read and the hash in a worker thread."""
        path, leaf, proof = self._locate(blob_id, index)
        data, ok = await trio.to_thread.run_sync(read_checked, path, blob_id, index, leaf)
        return self._checked(blob_id, index, data, ok), proof

    def _locate(self, blob_id: BlobId, index: int) -> tuple[Path, bytes | None, bytes]:
        """The file, the leaf to check the chunk against (None: checked already since the
        store opened) and the proof."""
        entry = self._entry(blob_id)
        blob_id.chunk_length(index)  # IndexError outside the blob
        try:
            levels = self._read_levels(blob_id)
        except FileNotFoundError:
            self.delete(blob_id)
            raise BlobNotHeld(f"{blob_id} vanished from disk") from None
        except CorruptBlob:
            raise self._corrupt(blob_id, "leaves") from None
        leaf = None if entry.is_checked(index) else levels[0][index]
        return self._data / str(blob_id), leaf, make_proof(levels, index)

    def _checked(self, blob_id: BlobId, index: int, data: bytes | None, ok: bool) -> bytes:
        if data is None:
            self.delete(blob_id)
            raise BlobNotHeld(f"{blob_id} vanished from disk")
        if not ok:
            raise self._corrupt(blob_id, f"chunk {index}")
        entry = self._entries.get(blob_id)
        if entry is not None:
            entry.mark_checked(index)
        return data

    def iter_chunks(self, blob_id: BlobId) -> Iterator[bytes]:
        """The blob's chunks in order, each checked (see :meth:`read_chunk`)."""
        for index in range(blob_id.n_chunks):
            yield self.read_chunk(blob_id, index)[0]

    def read_bytes(self, blob_id: BlobId, *, max_size: int) -> bytes:
        """The whole blob, checked chunk by chunk; raises :class:`BlobError` over ``max_size``."""
        if blob_id.size > max_size:
            raise BlobError(f"{blob_id} is {blob_id.size} bytes, over the limit of {max_size}")
        return b"".join(self.iter_chunks(blob_id))

    async def read_bytes_async(self, blob_id: BlobId, *, max_size: int) -> bytes:
        """:meth:`read_bytes` with each chunk's read and check in a worker thread."""
        if blob_id.size > max_size:
            raise BlobError(f"{blob_id} is {blob_id.size} bytes, over the limit of {max_size}")
        parts = []
        for index in range(blob_id.n_chunks):
            parts.append((await self.read_chunk_async(blob_id, index))[0])
        return b"".join(parts)

    def file_path(self, blob_id: BlobId) -> Path:
        """Where the blob's bytes live (read them with :meth:`read_chunk` to have them checked)."""
        self._entry(blob_id)
        return self._data / str(blob_id)

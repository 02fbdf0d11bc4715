"""The blob store's file work and per-blob bookkeeping: pure functions, safe in worker threads."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from ._blob_id import BlobHasher, BlobId, leaf_hash

COPY_BLOCK = 1 << 20


@dataclass
class Entry:
    """A stored blob: pinned, last used, and which chunks were hashed and found good."""

    blob_id: BlobId
    pinned: bool
    used: float
    checked: bytearray | None = None  # one bit per chunk: hashed and found good since opened

    def is_checked(self, index: int) -> bool:
        return self.checked is not None and bool(self.checked[index >> 3] >> (index & 7) & 1)

    def mark_checked(self, index: int) -> None:
        if self.checked is None:
            self.checked = bytearray((self.blob_id.n_chunks + 7) >> 3)
        self.checked[index >> 3] |= 1 << (index & 7)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def copy_hashed(source: str | os.PathLike[str], fd: int, chunk_shift: int) -> BlobHasher:
    """Copy ``source`` into the open file ``fd`` (closing it, fsynced) while hashing it."""
    hasher = BlobHasher(chunk_shift)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
        while block := src.read(COPY_BLOCK):
            hasher.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return hasher


def read_checked(
    path: Path, blob_id: BlobId, index: int, leaf: bytes | None
) -> tuple[bytes | None, bool]:
    """Read one chunk and compare its hash with ``leaf`` (None: no check); pure file work,
    thread-safe."""
    length = blob_id.chunk_length(index)
    try:
        with open(path, "rb") as file:
            file.seek(index << blob_id.chunk_shift)
            data = file.read(length)
    except FileNotFoundError:
        return None, False
    return data, len(data) == length and (leaf is None or leaf_hash(data) == leaf)


def read_checked_into(
    path: Path, blob_id: BlobId, index: int, leaf: bytes | None, out: memoryview
) -> bool | None:
    """:func:`read_checked` into ``out``: None when the file is gone, else whether the chunk
    is whole and matches ``leaf``."""
    length = blob_id.chunk_length(index)
    if len(out) != length:
        raise ValueError(f"a buffer of {len(out)} bytes for a chunk of {length}")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        got = os.preadv(fd, [out], index << blob_id.chunk_shift)
    finally:
        os.close(fd)
    return got == length and (leaf is None or leaf_hash(out) == leaf)

"""Content addresses of blobs: a Merkle root over fixed-size chunks that binds the size.

A blob of ``size`` bytes is cut into chunks of ``2**chunk_shift`` bytes (the last may be shorter;
an empty blob has one empty chunk). Hashes (SHA-256):

* leaf ``i``: ``H(0x00 || chunk_i)``; inner node: ``H(0x01 || left || right)``; a level with an
  odd count promotes its last node unchanged (the tree shape follows from the chunk count);
* root: ``H("axl.blob.v1" 0x00 || chunk_shift:u8 || size:u64be || top)``.

So a :class:`BlobId` (root, size, chunk_shift) lets a receiver check every chunk on arrival
against the root with a short proof (the siblings on its path), and a wrong size cannot verify.
Text form: ``blob1-<chunk_shift>-<size>-<root hex>``.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

from ._errors import InvalidBlobId

MIN_CHUNK_SHIFT = 10
MAX_CHUNK_SHIFT = 22
DEFAULT_CHUNK_SHIFT = 20  # 1 MiB chunks (see docs/blobs.md, "Chunk size")
MAX_BLOB_SIZE = 1 << 40
WIRE_LENGTH = 42  # version:u8 shift:u8 size:u64be root:32

_ROOT_TAG = b"axl.blob.v1\x00"
_TEXT = re.compile(r"blob1-(\d{1,2})-(\d{1,14})-([0-9a-f]{64})")


def leaf_hash(chunk: bytes | bytearray | memoryview) -> bytes:
    """The Merkle leaf of one chunk."""
    h = hashlib.sha256(b"\x00")
    h.update(chunk)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An inner Merkle node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def chunk_count(size: int, chunk_shift: int) -> int:
    """Chunks of a blob: ceil(size / chunk), at least one."""
    return max(1, -(-size >> chunk_shift))


def _seal(top: bytes, size: int, chunk_shift: int) -> bytes:
    return hashlib.sha256(_ROOT_TAG + struct.pack(">BQ", chunk_shift, size) + top).digest()


@dataclass(frozen=True, slots=True)
class BlobId:
    """The address of a blob: its sealed Merkle ``root``, its ``size`` and chunk size."""

    root: bytes
    size: int
    chunk_shift: int = DEFAULT_CHUNK_SHIFT

    def __post_init__(self) -> None:
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise InvalidBlobId("a blob root is 32 bytes")
        if not isinstance(self.size, int) or not 0 <= self.size <= MAX_BLOB_SIZE:
            raise InvalidBlobId(f"a blob size is an int in 0..{MAX_BLOB_SIZE}")
        if not isinstance(self.chunk_shift, int) or not (
            MIN_CHUNK_SHIFT <= self.chunk_shift <= MAX_CHUNK_SHIFT
        ):
            raise InvalidBlobId(f"chunk_shift is in {MIN_CHUNK_SHIFT}..{MAX_CHUNK_SHIFT}")

    @property
    def chunk_size(self) -> int:
        return 1 << self.chunk_shift

    @property
    def n_chunks(self) -> int:
        return chunk_count(self.size, self.chunk_shift)

    def chunk_length(self, index: int) -> int:
        """Length of chunk ``index``; raises IndexError outside 0..n_chunks-1."""
        if not 0 <= index < self.n_chunks:
            raise IndexError(index)
        return min(self.chunk_size, self.size - (index << self.chunk_shift))

    def __str__(self) -> str:
        return f"blob1-{self.chunk_shift}-{self.size}-{self.root.hex()}"

    @classmethod
    def parse(cls, text: str) -> BlobId:
        """Parse the text form; raises :class:`InvalidBlobId`."""
        match = _TEXT.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidBlobId(f"not a blob id: {str(text)[:80]!r}")
        return cls(bytes.fromhex(match[3]), int(match[2]), int(match[1]))

    def to_bytes(self) -> bytes:
        """The 42-byte wire form."""
        return struct.pack(">BBQ", 1, self.chunk_shift, self.size) + self.root

    @classmethod
    def from_bytes(cls, data: bytes) -> BlobId:
        """Inverse of :meth:`to_bytes`; raises :class:`InvalidBlobId`."""
        if len(data) != WIRE_LENGTH or data[0] != 1:
            raise InvalidBlobId("bad blob id bytes")
        _, shift, size = struct.unpack_from(">BBQ", data)
        return cls(bytes(data[10:]), size, shift)


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, the top last (a single node)."""
    if not leaves:
        raise ValueError("a tree has at least one leaf")
    levels = [leaves]
    level = leaves
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def blob_id_from_leaves(leaves: list[bytes], size: int, chunk_shift: int) -> BlobId:
    """The id of a blob given its chunk leaves (checks the count against the size)."""
    if len(leaves) != chunk_count(size, chunk_shift):
        raise InvalidBlobId("leaf count does not match the size")
    return BlobId(_seal(merkle_levels(leaves)[-1][0], size, chunk_shift), size, chunk_shift)


def blob_id_of(data: bytes, chunk_shift: int = DEFAULT_CHUNK_SHIFT) -> BlobId:
    """The id of ``data``."""
    step = 1 << chunk_shift
    view = memoryview(data)
    leaves = [leaf_hash(view[i : i + step]) for i in range(0, len(data), step)] or [leaf_hash(b"")]
    return blob_id_from_leaves(leaves, len(data), chunk_shift)


def make_proof(levels: list[list[bytes]], index: int) -> bytes:
    """The siblings on the path of leaf ``index`` (concatenated, bottom up)."""
    out = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            out.append(level[sibling])
        index >>= 1
    return b"".join(out)


def proof_length(index: int, n: int) -> int:
    """Bytes in the proof of leaf ``index`` of ``n`` (fixed by the tree shape)."""
    length = 0
    while n > 1:
        if index ^ 1 < n:
            length += 32
        index >>= 1
        n = (n + 1) // 2
    return length


def checked_leaf(
    blob_id: BlobId, index: int, chunk: bytes | bytearray | memoryview, proof: bytes
) -> bytes | None:
    """The chunk's leaf when ``chunk`` is chunk ``index`` of ``blob_id`` (its length, then its
    path to the root), else None. Pure: safe to run in a worker thread."""
    n = blob_id.n_chunks
    if not 0 <= index < n or len(chunk) != blob_id.chunk_length(index):
        return None
    if len(proof) != proof_length(index, n):
        return None
    leaf = node = leaf_hash(chunk)
    offset = 0
    while n > 1:
        if index ^ 1 < n:
            sibling = proof[offset : offset + 32]
            offset += 32
            node = node_hash(sibling, node) if index & 1 else node_hash(node, sibling)
        index >>= 1
        n = (n + 1) // 2
    return leaf if _seal(node, blob_id.size, blob_id.chunk_shift) == blob_id.root else None


def verify_chunk(
    blob_id: BlobId, index: int, chunk: bytes | bytearray | memoryview, proof: bytes
) -> bool:
    """True when ``chunk`` is chunk ``index`` of ``blob_id`` (see :func:`checked_leaf`)."""
    return checked_leaf(blob_id, index, chunk, proof) is not None


class BlobHasher:
    """Computes a blob id incrementally from bytes fed in any pieces."""

    def __init__(self, chunk_shift: int = DEFAULT_CHUNK_SHIFT) -> None:
        self.chunk_shift = chunk_shift
        self._step = 1 << chunk_shift
        self._pending = bytearray()
        self.leaves: list[bytes] = []
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        self._pending += data
        while len(self._pending) >= self._step:
            self.leaves.append(leaf_hash(self._pending[: self._step]))
            del self._pending[: self._step]

    def finish(self) -> BlobId:
        if self._pending or not self.leaves:
            self.leaves.append(leaf_hash(bytes(self._pending)))
            self._pending.clear()
        return blob_id_from_leaves(self.leaves, self.size, self.chunk_shift)

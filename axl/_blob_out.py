"""A holder's outgoing frames, assembled in one buffer reused for every write on a stream.

A chunk is read from the store straight into its place after its frame header and proof, so
an answer costs no new 1 MiB buffers (a fresh one costs the kernel its page faults, ~0.4 ms
per MiB measured here) and no copy to join the frames: the stream is handed a view of the
buffer, which is written again only after that write returned.
"""

from __future__ import annotations

from ._blob_buffers import BufferPool
from ._blob_protocol import Frame, chunk_header, encode


class OutFrames:
    """Frames for one stream write; :meth:`view` is valid until the next :meth:`clear`."""

    def __init__(self, pool: BufferPool, size_hint: int) -> None:
        self._pool = pool
        self._buffer = pool.take(size_hint)
        self.size = 0
        self.chunks = 0

    def close(self) -> None:
        """Give the buffer back to the pool (the stream is done)."""
        self._pool.give(self._buffer)
        self._buffer = bytearray()

    def _reserve(self, length: int) -> memoryview:
        end = self.size + length
        if len(self._buffer) < end:
            try:
                self._buffer.extend(bytes(end - len(self._buffer)))
            except BufferError:  # a view of it is still alive somewhere: start a new one
                self._buffer = self._buffer[: self.size] + bytes(end - self.size)
        view = memoryview(self._buffer)[self.size : end]
        self.size = end
        return view

    def add(self, frame: Frame) -> None:
        """Append a small frame (not a chunk: see :meth:`chunk`)."""
        data = encode(frame)
        with self._reserve(len(data)) as view:
            view[:] = data

    def chunk(self, index: int, proof: bytes, length: int) -> memoryview:
        """Append a chunk frame's header and ``proof``; returns the ``length`` bytes where its
        data goes (release the view before the next call)."""
        head = chunk_header(index, proof, length)
        with self._reserve(len(head)) as view:
            view[:] = head
        self.chunks += 1
        return self._reserve(length)

    def drop_last_chunk(self, length: int, proof: bytes) -> None:
        """Undo the last :meth:`chunk` (its read failed)."""
        self.size -= len(chunk_header(0, proof, length)) + length
        self.chunks -= 1

    def view(self) -> memoryview:
        return memoryview(self._buffer)[: self.size]

    def clear(self) -> None:
        self.size = 0
        self.chunks = 0

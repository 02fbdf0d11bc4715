"""The sans-IO chunk protocol: frame codec and reader."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axl import BlobProtocolError, blob_id_of
from axl._blob_buffers import BufferPool
from axl._blob_protocol import (
    Chunk,
    FrameReader,
    Get,
    Ready,
    Refusal,
    Refuse,
    Want,
    chunk_frame_limit,
    encode,
    encode_all,
)
from tests.axl.test_blob_id import chunks_and_proofs

SHIFT = 10
BLOB = blob_id_of(bytes(range(256)) * 20, SHIFT)  # 5120 bytes: 5 chunks
LIMIT = chunk_frame_limit(BLOB)
PAIRS = chunks_and_proofs(bytes(i * 7 % 251 for i in range(7 * 1024 + 100)), SHIFT)

frames = st.one_of(
    st.builds(Want, st.just(BLOB)),
    st.builds(Get, st.integers(0, 2**32 - 1)),
    st.just(Ready()),
    st.builds(Refuse, st.sampled_from(list(Refusal))),
    st.builds(
        Chunk,
        st.integers(0, 2**32 - 1),
        st.integers(0, 8).map(lambda n: bytes(32 * n)),
        st.binary(max_size=1024),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(frames, max_size=8),
    st.lists(st.integers(1, 700), max_size=20),
    st.sampled_from([1 << 16, 200, 1]),
)
def test_frames_round_trip_through_any_cut(
    items: list[object], cuts: list[int], preallocate: int
) -> None:
    """Whether chunks are assembled in the shared buffer or in one of their own size."""
    wire = b"".join(encode(f) for f in items)  # type: ignore[arg-type]
    reader = FrameReader(LIMIT, preallocate)
    out = []
    pos = 0
    for cut in [*cuts, len(wire)]:
        reader.feed(wire[pos : pos + cut])
        pos += cut
        while (frame := reader.next()) is not None:
            out.append(frame)
    assert out == items


@settings(max_examples=60, deadline=None)
@given(
    st.lists(frames, max_size=8),
    st.lists(st.integers(1, 700), max_size=20),
    st.sampled_from([1 << 16, 200, 1]),
)
def test_one_write_of_many_frames_is_the_frames_in_a_row(
    items: list[object], cuts: list[int], preallocate: int
) -> None:
    """``encode_all`` (one stream write) equals the frames one by one, and ``has_frame`` is
    true exactly when ``next`` has a frame to give."""
    wire = encode_all(items)  # type: ignore[arg-type]
    assert wire == b"".join(encode(f) for f in items)  # type: ignore[arg-type]
    reader = FrameReader(LIMIT, preallocate)
    out = []
    pos = 0
    for cut in [*cuts, len(wire)]:
        reader.feed(wire[pos : pos + cut])
        pos += cut
        while reader.has_frame:
            frame = reader.next()
            assert frame is not None
            out.append(frame)
        assert reader.next() is None
        assert reader.buffered <= LIMIT + 4 + cut  # one frame and one read at most
    assert out == items


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([1 << 16, 1]))
def test_garbage_is_a_typed_error_or_needs_more(garbage: bytes, preallocate: int) -> None:
    reader = FrameReader(LIMIT, preallocate)
    reader.feed(garbage)
    try:
        while reader.next() is not None:
            pass
    except BlobProtocolError:
        pass


def test_oversized_frame_is_refused_from_its_header() -> None:
    reader = FrameReader(64)
    reader.feed((1 << 31).to_bytes(4, "big") + b"\x04")
    with pytest.raises(BlobProtocolError):
        reader.next()


def test_chunk_with_bad_proof_length_is_refused() -> None:
    reader = FrameReader(LIMIT)
    body = (0).to_bytes(4, "big") + (31).to_bytes(2, "big") + b"x" * 40
    reader.feed((1 + len(body)).to_bytes(4, "big") + b"\x04" + body)
    with pytest.raises(BlobProtocolError):
        reader.next()


@pytest.mark.parametrize("preallocate", [1 << 16, 1])
@pytest.mark.parametrize("split", [0, 3, 9, 700])
def test_a_chunk_is_handed_over_without_a_copy(preallocate: int, split: int) -> None:
    """A chunk that ends the buffer, or one assembled in its own buffer, is handed over as a
    read-only view of it; what the reader reads next cannot change it."""
    chunk, proof = PAIRS[1]
    reader = FrameReader(LIMIT, preallocate)
    wire = encode(Chunk(1, proof, chunk))
    reader.feed(wire[:split])
    reader.feed(wire[split:])
    got = reader.next()
    assert isinstance(got, Chunk) and isinstance(got.data, memoryview) and got.data.readonly
    reader.feed(encode(Chunk(2, PAIRS[2][1], PAIRS[2][0])) + encode(Get(7)))
    assert reader.next() == Chunk(2, PAIRS[2][1], PAIRS[2][0])
    assert reader.next() == Get(7)
    assert got == Chunk(1, proof, chunk) and bytes(got.data) == chunk


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6),
    st.lists(st.integers(1, 7), min_size=1, max_size=8),
    st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_recycled_frame_buffers_never_change_a_chunk_before_it_is_given_back(
    datas: list[bytes], cuts: list[int], recycling: list[bool]
) -> None:
    """Chunks handed over stay intact while held, whatever later frames reuse; a recycled
    buffer is taken again for a later frame (with ``preallocate`` 1 and reads shorter than a
    frame, every chunk is assembled in a buffer of its own)."""
    wire = b"".join(encode(Chunk(i, b"", d)) for i, d in enumerate(datas))
    pool = BufferPool(2)
    reader = FrameReader(LIMIT, 1, pool=pool)
    held: list[Chunk] = []
    seen_buffers: set[int] = set()
    reused = False
    pos = 0
    while pos < len(wire):
        cut = cuts[pos % len(cuts)]
        reader.feed(wire[pos : pos + cut])
        pos += cut
        while (frame := reader.next()) is not None:
            assert isinstance(frame, Chunk)
            assert isinstance(frame.data, memoryview)
            owner = id(frame.data.obj)
            reused |= owner in seen_buffers
            seen_buffers.add(owner)
            assert bytes(frame.data) == datas[frame.index]
            for chunk in held:  # nothing held was overwritten by this frame
                assert bytes(chunk.data) == datas[chunk.index]
            if recycling[frame.index % len(recycling)]:
                reader.recycle(frame.data)
            else:
                held.append(frame)
    assert not reader.buffered
    if all(recycling) and len(datas) > 1 and len({len(d) for d in datas}) == 1:
        assert reused  # same-size frames come back in the same buffer
    if not any(recycling):
        assert len(seen_buffers) == len(datas)


def test_buffer_pool_is_bounded_and_fits_sizes() -> None:
    pool = BufferPool(2)
    a, b, c = bytearray(100), bytearray(1 << 20), bytearray(50)
    for buffer in (a, b, c):
        pool.give(buffer)
    assert pool.take(1 << 20) is b  # the third was not kept
    assert pool.take(90) is a
    assert len(pool.take(90)) == 90  # none left: a new one
    pool.give(bytearray(1 << 20))
    assert len(pool.take(100)) == 100  # far too large a spare is not handed out

"""Blob ids: chunk proofs verify exactly the right bytes; any corruption is detected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axl import BlobId, InvalidBlobId, blob_id_of
from axl._blob_id import (
    MIN_CHUNK_SHIFT,
    BlobHasher,
    leaf_hash,
    make_proof,
    merkle_levels,
    verify_chunk,
)

SHIFT = MIN_CHUNK_SHIFT  # 1 KiB chunks keep the examples small


def chunks_and_proofs(data: bytes, shift: int) -> list[tuple[bytes, bytes]]:
    step = 1 << shift
    pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    levels = merkle_levels([leaf_hash(p) for p in pieces])
    return [(p, make_proof(levels, i)) for i, p in enumerate(pieces)]


blobs = st.binary(min_size=0, max_size=9 * 1024)


@settings(max_examples=40, deadline=None)
@given(blobs)
def test_every_chunk_verifies_with_its_proof(data: bytes) -> None:
    blob_id = blob_id_of(data, SHIFT)
    assert blob_id.size == len(data)
    for index, (chunk, proof) in enumerate(chunks_and_proofs(data, SHIFT)):
        assert verify_chunk(blob_id, index, chunk, proof)


@settings(max_examples=60, deadline=None)
@given(blobs, st.data())
def test_any_corruption_of_any_chunk_is_detected(data: bytes, draw: st.DataObject) -> None:
    blob_id = blob_id_of(data, SHIFT)
    pairs = chunks_and_proofs(data, SHIFT)
    index = draw.draw(st.integers(0, len(pairs) - 1))
    chunk, proof = pairs[index]
    how = draw.draw(st.sampled_from(["flip", "truncate", "extend", "proof", "index", "other"]))
    if how == "flip" and chunk:
        pos = draw.draw(st.integers(0, len(chunk) - 1))
        bit = draw.draw(st.integers(0, 7))
        bad = bytearray(chunk)
        bad[pos] ^= 1 << bit
        assert not verify_chunk(blob_id, index, bytes(bad), proof)
    elif how == "truncate" and chunk:
        assert not verify_chunk(blob_id, index, chunk[:-1], proof)
    elif how == "extend":
        assert not verify_chunk(blob_id, index, chunk + b"\x00", proof)
    elif how == "proof" and proof:
        pos = draw.draw(st.integers(0, len(proof) - 1))
        bad = bytearray(proof)
        bad[pos] ^= 0x80
        assert not verify_chunk(blob_id, index, chunk, bytes(bad))
    elif how == "index" and len(pairs) > 1:
        other = (index + 1) % len(pairs)
        assert not verify_chunk(blob_id, other, chunk, proof) or pairs[other][0] == chunk
    elif how == "other":
        wrong = BlobId(blob_id.root, blob_id.size + 1, blob_id.chunk_shift)
        assert not verify_chunk(wrong, index, chunk, proof)


@settings(max_examples=30, deadline=None)
@given(blobs, st.lists(st.integers(1, 3000), max_size=8))
def test_incremental_hasher_matches_one_shot(data: bytes, cuts: list[int]) -> None:
    hasher = BlobHasher(SHIFT)
    pos = 0
    for cut in cuts:
        hasher.update(data[pos : pos + cut])
        pos += cut
    hasher.update(data[pos:])
    assert hasher.finish() == blob_id_of(data, SHIFT)


def test_size_is_bound_into_the_id() -> None:
    a = blob_id_of(b"x" * 1024, SHIFT)
    b = blob_id_of(b"x" * 1024 + b"\x00", SHIFT)
    assert a.root != b.root
    assert blob_id_of(b"", SHIFT) != blob_id_of(b"\x00", SHIFT)


def test_text_and_wire_forms_round_trip() -> None:
    blob_id = blob_id_of(b"hello", 12)
    assert BlobId.parse(str(blob_id)) == blob_id
    assert BlobId.from_bytes(blob_id.to_bytes()) == blob_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "blob1",
        "blob1-18-5-" + "0" * 63,
        "blob1-9-5-" + "0" * 64,
        "blob1-23-5-" + "0" * 64,
        "blob1-18-99999999999999-" + "0" * 64,
        "blob1-18-5-" + "G" * 64,
    ],
)
def test_bad_text_ids_raise_typed(text: str) -> None:
    with pytest.raises(InvalidBlobId):
        BlobId.parse(text)


def test_bad_wire_ids_raise_typed() -> None:
    good = blob_id_of(b"x").to_bytes()
    for bad in (good[:-1], b"\x02" + good[1:], good[:1] + b"\x05" + good[2:]):
        with pytest.raises(InvalidBlobId):
            BlobId.from_bytes(bad)

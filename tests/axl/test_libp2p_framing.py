"""The libp2p transport's sans-IO parts: framing, token bucket, backoff."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axl import DecodeError, FrameTooLarge
from axl._libp2p_framing import Backoff, FrameDecoder, TokenBucket, encode_batch

frames_st = st.lists(st.binary(min_size=1, max_size=300), max_size=20)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(frames_st, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_any_chunking_yields_the_frames_in_order(frames: list[bytes], cuts: list[int]) -> None:
    decoder = FrameDecoder(max_frame_size=300)
    out: list[bytes] = []
    for chunk in chunked(encode_batch(frames), cuts):
        out.extend(decoder.feed(chunk))
    assert out == frames
    assert decoder.buffered == 0


@given(frames_st, st.integers(min_value=0, max_value=3))
def test_a_truncated_stream_never_yields_a_partial_frame(frames: list[bytes], cut: int) -> None:
    data = encode_batch(frames)
    decoder = FrameDecoder(max_frame_size=300)
    out = decoder.feed(data[: max(0, len(data) - 1 - cut)])
    assert out == frames[: len(out)]
    if frames:
        assert len(out) < len(frames)


def test_oversized_announcement_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    with pytest.raises(FrameTooLarge):
        decoder.feed((1001).to_bytes(4, "big"))
    with pytest.raises(DecodeError):  # the decoder stays failed
        decoder.feed(b"\x00\x00\x00\x01x")


def test_zero_length_frame_is_a_violation() -> None:
    with pytest.raises(DecodeError):
        FrameDecoder(max_frame_size=10).feed(b"\x00\x00\x00\x00")


def test_encode_refuses_empty_frames() -> None:
    with pytest.raises(ValueError):
        encode_batch([b"ok", b""])


@given(st.lists(st.tuples(st.floats(0, 5), st.integers(1, 50)), max_size=40))
def test_token_bucket_never_allows_more_than_rate_times_time_plus_burst(
    steps: list[tuple[float, int]],
) -> None:
    rate, burst = 100.0, 20.0
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    taken = 0
    for dt, count in steps:
        now += dt
        wait = bucket.take(count, now)
        taken += count
        now += wait  # a compliant caller waits this long
        assert taken <= rate * now + burst + 1e-6


def test_backoff_doubles_up_to_the_ceiling_and_resets() -> None:
    backoff = Backoff(base=1.0, ceiling=5.0)
    assert backoff.retry_at("p") == 0.0
    assert backoff.failed("p", now=10.0) == 11.0
    assert backoff.failed("p", now=10.0) == 12.0
    assert backoff.failed("p", now=10.0) == 14.0
    assert backoff.failed("p", now=10.0) == 15.0
    backoff.succeeded("p")
    assert backoff.retry_at("p") == 0.0


@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=5000), max_size=10))
def test_garbage_gives_frames_or_a_typed_error_never_anything_else(
    garbage: bytes, cuts: list[int]
) -> None:
    decoder = FrameDecoder(max_frame_size=512)
    try:
        for chunk in chunked(garbage, cuts):
            for frame in decoder.feed(chunk):
                assert 1 <= len(frame) <= 512
    except (FrameTooLarge, DecodeError):
        assert decoder.failed
    assert decoder.buffered <= 512 + 4 + len(garbage)

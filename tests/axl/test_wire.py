"""Envelope encoding and the receive checks (sans-IO: FrameGuard, no bus)."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from axl import (
    DecodeError,
    FrameTooLarge,
    Identity,
    Kind,
    Message,
    MisaddressedFrame,
    RejectedFrame,
    ReplayError,
    SignatureError,
    StaleMessage,
    UnknownMessageType,
    default_registry,
)
from axl._guard import FrameGuard, ReplayWindow
from axl._wire import UNSIGNED, decode_frame, encode_frame, seal, sealed_length

ALICE = Identity.from_seed(b"a" * 32)
BOB = Identity.from_seed(b"b" * 32)
NOW_MS = 1_700_000_000_000


class Note(Message, tag="test.wire_note"):
    text: str
    n: int = 0


def make_guard(**overrides: int) -> FrameGuard:
    options = {
        "max_frame_size": 4096,
        "freshness_window_ms": 60_000,
        "max_future_skew_ms": 5_000,
        "replay_capacity": 1000,
    }
    options.update(overrides)
    return FrameGuard(BOB.peer_id, default_registry, **options)


def make_frame(
    message: Message | None = None,
    *,
    sender: Identity = ALICE,
    timestamp_ms: int = NOW_MS,
    message_id: bytes = b"\x01" * 16,
    topic: str | None = None,
    kind: Kind = Kind.MESSAGE,
    reply_to: bytes | None = None,
) -> bytes:
    message = message or Note(text="hello")
    return encode_frame(
        sender,
        kind=kind,
        type=type(message).axl_tag,
        version=type(message).axl_version,
        recipient=None if topic else BOB.peer_id,
        topic=topic,
        message_id=message_id,
        reply_to=reply_to,
        timestamp_ms=timestamp_ms,
        nonce=7,
        payload=message.encode_payload(),
    )


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65_535, 65_536, 200_000])
def test_sealed_length_is_known_before_signing(size: int) -> None:
    assert len(seal(b"x" * size, UNSIGNED)) == sealed_length(size)


def test_good_frame_is_accepted() -> None:
    accepted = make_guard().check(make_frame(Note(text="hi", n=3)), NOW_MS)
    assert accepted.message == Note(text="hi", n=3)
    assert accepted.envelope.sender == ALICE.peer_id
    assert accepted.envelope.recipient == BOB.peer_id
    assert accepted.envelope.nonce == 7


def test_topic_frame_is_accepted() -> None:
    accepted = make_guard().check(make_frame(topic="news"), NOW_MS)
    assert accepted.envelope.topic == "news"
    assert accepted.envelope.recipient is None


FRAME = make_frame(Note(text="tamper me", n=42))


@settings(max_examples=300)
@given(st.integers(0, len(FRAME) - 1), st.integers(1, 255))
def test_tampering_any_byte_is_rejected(position: int, flip: int) -> None:
    tampered = bytearray(FRAME)
    tampered[position] ^= flip
    with pytest.raises(RejectedFrame):
        make_guard().check(bytes(tampered), NOW_MS)


def test_every_byte_position_is_covered() -> None:
    # Exhaustive single-byte flips (one flip value per position): nothing slips through.
    for position in range(len(FRAME)):
        tampered = bytearray(FRAME)
        tampered[position] ^= 0x01
        with pytest.raises(RejectedFrame):
            make_guard().check(bytes(tampered), NOW_MS)


def test_replay_is_rejected() -> None:
    guard = make_guard()
    frame = make_frame()
    guard.check(frame, NOW_MS)
    with pytest.raises(ReplayError):
        guard.check(frame, NOW_MS + 1)


def test_same_id_from_another_sender_is_not_a_replay() -> None:
    guard = make_guard()
    guard.check(make_frame(sender=ALICE), NOW_MS)
    guard.check(make_frame(sender=Identity.from_seed(b"c" * 32)), NOW_MS)


@pytest.mark.parametrize("skew_ms", [-60_001, 5_001, -(10**9)])
def test_stale_or_future_frames_are_rejected(skew_ms: int) -> None:
    with pytest.raises(StaleMessage):
        make_guard().check(make_frame(timestamp_ms=NOW_MS + skew_ms), NOW_MS)


def test_oversized_frame_is_rejected_before_decoding() -> None:
    with pytest.raises(FrameTooLarge):
        make_guard(max_frame_size=100).check(b"\xff" * 101, NOW_MS)


def test_misaddressed_frame_is_rejected() -> None:
    guard = FrameGuard(
        ALICE.peer_id,
        default_registry,
        max_frame_size=4096,
        freshness_window_ms=60_000,
        max_future_skew_ms=5_000,
        replay_capacity=10,
    )
    with pytest.raises(MisaddressedFrame):
        guard.check(make_frame(), NOW_MS)


def test_unknown_type_is_rejected() -> None:
    body = msgpack.packb(
        [
            1,
            0,
            "nobody.knows",
            1,
            ALICE.peer_id.raw,
            BOB.peer_id.raw,
            None,
            b"\x02" * 16,
            None,
            NOW_MS,
            1,
            b"\x80",
        ]
    )
    frame = msgpack.packb([body, ALICE.sign(b"axl/envelope/v1\x00" + body)])
    with pytest.raises(UnknownMessageType):
        make_guard().check(frame, NOW_MS)


def test_signature_by_another_key_is_rejected() -> None:
    envelope = decode_frame(make_frame())
    forged = msgpack.packb([envelope.body, BOB.sign(b"axl/envelope/v1\x00" + envelope.body)])
    with pytest.raises(SignatureError):
        make_guard().check(forged, NOW_MS)


def test_signature_without_domain_is_rejected() -> None:
    envelope = decode_frame(make_frame())
    forged = msgpack.packb([envelope.body, ALICE.sign(envelope.body)])
    with pytest.raises(SignatureError):
        make_guard().check(forged, NOW_MS)


def test_reply_to_only_on_responses() -> None:
    with pytest.raises(DecodeError, match="reply_to"):
        decode_frame(make_frame(kind=Kind.RESPONSE))
    with pytest.raises(DecodeError, match="reply_to"):
        decode_frame(make_frame(kind=Kind.MESSAGE, reply_to=b"\x03" * 16))
    assert decode_frame(make_frame(kind=Kind.RESPONSE, reply_to=b"\x03" * 16)).is_response


@settings(max_examples=1000)
@given(st.binary(max_size=600))
@example(b"")
@example(msgpack.packb([b"", b""]))
@example(msgpack.packb([msgpack.packb(list(range(12))), b"\x00" * 64]))
def test_random_frames_only_raise_typed_errors(frame: bytes) -> None:
    with pytest.raises(RejectedFrame):
        make_guard().check(frame, NOW_MS)


_body_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.lists(st.integers(0, 2**32), max_size=3),
)


@settings(max_examples=1000)
@given(st.data())
def test_mutated_envelope_fields_only_raise_typed_errors(data: st.DataObject) -> None:
    fields = msgpack.unpackb(decode_frame(make_frame()).body)
    index = data.draw(st.integers(0, len(fields) - 1))
    fields[index] = data.draw(_body_values)
    if data.draw(st.booleans()):
        fields = fields[: data.draw(st.integers(0, len(fields)))]
    body = msgpack.packb(fields)
    frame = msgpack.packb([body, ALICE.sign(b"axl/envelope/v1\x00" + body)])
    with contextlib.suppress(RejectedFrame):
        make_guard().check(frame, NOW_MS)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), max_size=200), st.integers(1, 8))
def test_replay_window_is_bounded_and_sound(events: list[tuple[int, int]], capacity: int) -> None:
    """No envelope (same sender, id and signed timestamp) is ever accepted twice, and memory
    never exceeds the capacity."""
    window = ReplayWindow(window_ms=10**9, capacity=capacity)
    accepted: set[tuple[int, int]] = set()
    for message_number, timestamp in events:
        message_id = message_number.to_bytes(16, "big")
        try:
            window.check_and_add(ALICE.peer_id, message_id, timestamp, now_ms=10)
        except ReplayError:
            continue
        assert (message_number, timestamp) not in accepted
        accepted.add((message_number, timestamp))
        assert len(window) <= capacity


def test_replay_window_expires_old_ids() -> None:
    window = ReplayWindow(window_ms=100, capacity=10)
    for i in range(5):
        window.check_and_add(ALICE.peer_id, bytes([i]) * 16, timestamp_ms=i, now_ms=i)
    window.check_and_add(ALICE.peer_id, b"\xff" * 16, timestamp_ms=1000, now_ms=1000)
    assert len(window) == 1

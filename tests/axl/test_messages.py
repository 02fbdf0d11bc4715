from __future__ import annotations

import importlib
from enum import Enum

import msgpack
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pydantic import Field, ValidationError, field_serializer

from axl import (
    DuplicateMessageType,
    InvalidMessage,
    Message,
    MessageRegistry,
    MessageTypeError,
    PeerId,
    UnknownMessageType,
    default_registry,
)

from . import strategies  # noqa: F401  (registers the PeerId strategy)

# Import every package so the default registry holds every message type the project defines.
for package in ("agents", "compute", "coordination"):
    importlib.import_module(package)


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Sample(Message, tag="test.sample"):
    number: int
    text: str
    blob: bytes
    peer: PeerId
    colour: Colour
    values: tuple[float, ...] = ()
    nested: dict[str, list[int]] = {}


@settings(max_examples=100)
@given(st.builds(Sample))
def test_sample_round_trip(sample: Sample) -> None:
    assert Sample.decode_payload(sample.encode_payload()) == sample


REGISTERED = sorted(default_registry, key=lambda cls: (cls.axl_tag, cls.axl_version))


@st.composite
def valid_messages(draw: st.DrawFn, cls: type[Message]) -> Message:
    """Instances of ``cls``: its registered strategy if it has one (``st.register_type_strategy``),
    else built from its field types, dropping draws that its validators refuse."""
    try:
        return draw(st.from_type(cls))
    except ValidationError:
        reject()


@pytest.mark.parametrize("cls", REGISTERED, ids=lambda cls: f"{cls.axl_tag}.v{cls.axl_version}")
@settings(
    max_examples=25, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)
@given(data=st.data())
def test_every_registered_message_round_trips(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(valid_messages(cls))
    payload = message.encode_payload()
    decoded = cls.decode_payload(payload)
    assert type(decoded) is cls
    # Compare encodings, not models: NaN != NaN, but a NaN field must still round-trip.
    assert decoded.encode_payload() == payload
    assert default_registry.lookup(cls.axl_tag, cls.axl_version) is cls


def test_duplicate_tag_is_refused() -> None:
    registry = MessageRegistry()

    class First(Message, tag="test.dup", registry=registry):
        x: int

    with pytest.raises(DuplicateMessageType, match=r"test\.dup"):

        class Second(Message, tag="test.dup", registry=registry):
            y: int

    class NewVersion(Message, tag="test.dup", version=2, registry=registry):
        y: int

    assert registry.lookup("test.dup", 1) is First
    assert registry.lookup("test.dup", 2) is NewVersion


@pytest.mark.parametrize("tag", ["nodots", "Upper.case", "a..b", "a.b-c", ".a.b", "a.b."])
def test_bad_tags_are_refused(tag: str) -> None:
    with pytest.raises(MessageTypeError):

        class Bad(Message, tag=tag, registry=MessageRegistry()):
            pass


def test_unknown_type_is_typed() -> None:
    with pytest.raises(UnknownMessageType, match=r"nope\.nothing"):
        default_registry.lookup("nope.nothing", 1)
    with pytest.raises(UnknownMessageType):
        default_registry.lookup("test.sample", 99)


def test_invalid_field_names_the_path() -> None:
    payload = msgpack.packb({"number": "x", "text": "t", "blob": b"", "peer": b"", "colour": "red"})
    with pytest.raises(InvalidMessage, match=r"field number"):
        Sample.decode_payload(payload)


def test_nested_invalid_field_path() -> None:
    good = {"number": 1, "text": "t", "blob": b"", "colour": "red", "nested": {"k": [1, "z"]}}
    good["peer"] = b"\x00" * 38
    with pytest.raises(InvalidMessage, match=r"field (peer|nested\.k\.1)"):
        Sample.decode_payload(msgpack.packb(good))


@pytest.mark.parametrize(
    "payload", [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"extra": 1})]
)
def test_malformed_payloads_are_typed(payload: bytes) -> None:
    with pytest.raises(InvalidMessage):
        Sample.decode_payload(payload)


def test_messages_are_frozen() -> None:
    class Frozen(Message, tag="test.frozen"):
        x: int

    message = Frozen(x=1)
    with pytest.raises(Exception, match="frozen"):
        message.x = 2  # type: ignore[misc]


class Strict(Message, tag="test.strict"):
    count: int
    ratio: float = 0.5
    flag: bool = False
    items: tuple[int, ...] = ()


@pytest.mark.parametrize(
    "payload",
    [
        {"count": True},  # a bool is not an int
        {"count": "5"},  # nor is a numeric string
        {"count": 1.0},  # nor a float
        {"count": 1, "ratio": 1},  # an int is not a float
        {"count": 1, "flag": 1},  # an int is not a bool
        {"count": 1, "items": [1, True]},  # nested too
        {"count": 1, "extra": 0},  # unknown keys are refused
    ],
)
def test_payload_types_are_strict(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidMessage):
        Strict.decode_payload(msgpack.packb(payload))


def test_strict_payloads_still_accept_exact_types_and_omitted_defaults() -> None:
    decoded = Strict.decode_payload(msgpack.packb({"count": 3, "items": [1, 2]}))
    assert decoded == Strict(count=3, items=(1, 2))


def test_a_message_declared_without_a_version_is_version_1() -> None:
    assert Strict.axl_version == 1


class Plain(Message, tag="test.plain"):
    count: int
    ratio: float = 0.5
    flag: bool = False
    name: str = ""
    blob: bytes = b""


@pytest.mark.parametrize(
    "payload",
    [
        {"count": True},
        {"count": "5"},
        {"count": 1.0},
        {"count": 1, "ratio": 1},
        {"count": 1, "flag": 1},
        {"count": 1, "name": b"x"},
        {"count": 1, "blob": "x"},
        {"count": 1, "ratio": float("nan")},  # NaN is a float: accepted, as before
        {"count": 1, "extra": 0},
    ],
)
def test_plain_messages_decode_as_strictly_as_any(
    payload: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages of plain fields skip the canonical re-encoding when the decoded values are
    held as sent; the verdict is the full check's, payload by payload."""
    packed = msgpack.packb(payload)
    full = _outcome(Plain, packed, monkeypatch, fast=False)
    assert _outcome(Plain, packed, monkeypatch, fast=True) == full
    if payload.get("ratio") != payload.get("ratio"):
        assert full[0] == "ok"  # NaN for a float field is a float
    elif set(payload) != {"count"} or type(payload["count"]) is not int:
        assert full[0] == "InvalidMessage"


_plain_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.none(),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.dictionaries(
        st.sampled_from(["count", "ratio", "flag", "name", "blob", "other"]), _plain_values
    )
)
def test_the_plain_fast_path_agrees_with_the_full_check(
    payload: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        packed = _pack(payload)
    except (OverflowError, TypeError):
        reject()
    assert _outcome(Plain, packed, monkeypatch, fast=True) == _outcome(
        Plain, packed, monkeypatch, fast=False
    )


class Shifted(Message, tag="test.shifted"):
    """A serializer between the model and its payload: not plain."""

    count: int

    @field_serializer("count")
    def _shift(self, value: int) -> int:
        return value + 1


def test_a_message_with_a_serializer_keeps_the_full_check() -> None:
    # The canonical payload of count=1 says 2, so a payload saying 1 is not what this node
    # would encode: refused, as it always was (a fast path trusting the held value would take it).
    with pytest.raises(InvalidMessage):
        Shifted.decode_payload(msgpack.packb({"count": 1}))


class Unsent(Message, tag="test.unsent"):
    """A field excluded from the dump: the payload this node encodes leaves it out."""

    count: int = Field(default=0, exclude=True)


def test_a_message_with_an_excluded_field_keeps_the_full_check() -> None:
    # This node never sends ``count``, so a payload carrying it is not what it would encode.
    with pytest.raises(InvalidMessage):
        Unsent.decode_payload(msgpack.packb({"count": 1}))


def _pack(payload: dict[str, object]) -> bytes:
    from axl._messages import _msgpack_default

    packed: bytes = msgpack.packb(payload, default=_msgpack_default, use_bin_type=True)
    return packed


def _outcome(
    cls: type[Message], packed: bytes, monkeypatch: pytest.MonkeyPatch, *, fast: bool
) -> tuple[str, object]:
    """What decoding ``packed`` gives, with the plain fast path on or off."""
    from axl import _messages

    with monkeypatch.context() as patch:
        patch.setitem(_messages._plain_fields, cls, fast)
        try:
            message = cls.decode_payload(packed)
        except InvalidMessage:
            return ("InvalidMessage", None)
    return ("ok", message.model_dump_json())

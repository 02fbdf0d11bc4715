"""Typed messages: frozen pydantic models registered under a stable (tag, version).

Declare a message by subclassing :class:`Message` with a ``tag`` class keyword::

    class Ping(Message, tag="demo.ping"):
        seq: int

Subclasses without a tag are abstract bases and cannot be sent. Payloads are msgpack maps of
the model's fields; decoding validates them against the model and raises typed errors. The
schema is strict: unknown keys are refused, and every value must have the msgpack type this
node would encode for it (``true`` is not ``1``, ``"5"`` is not ``5``, ``1`` is not ``1.0``).
Fields with a default may be omitted. A class declared without ``version`` is version 1.
"""

from __future__ import annotations

import enum
import re
from typing import Any, ClassVar

import msgpack
from pydantic import BaseModel, ConfigDict, ValidationError

from ._errors import DuplicateMessageType, InvalidMessage, MessageTypeError, UnknownMessageType

_TAG_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class MessageRegistry:
    """Maps (tag, version) to message classes. Refuses duplicates."""

    def __init__(self) -> None:
        self._classes: dict[tuple[str, int], type[Message]] = {}

    def register(self, cls: type[Message]) -> None:
        """Add ``cls`` under its tag and version; raises :class:`DuplicateMessageType`."""
        key = (cls.axl_tag, cls.axl_version)
        existing = self._classes.get(key)
        if existing is not None and existing is not cls:
            raise DuplicateMessageType(
                f"message type {key[0]!r} v{key[1]} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}; pick another tag or version"
            )
        self._classes[key] = cls

    def lookup(self, tag: str, version: int) -> type[Message]:
        """The class for (tag, version); raises :class:`UnknownMessageType`."""
        try:
            return self._classes[(tag, version)]
        except KeyError:
            raise UnknownMessageType(
                f"unknown message type {tag!r} v{version}: the sender uses a type this node "
                "has not imported or a newer schema version"
            ) from None

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self._classes

    def __iter__(self) -> Any:
        return iter(self._classes.values())

    def __len__(self) -> int:
        return len(self._classes)


default_registry = MessageRegistry()


BIGINT_EXT_CODE = 1
"""msgpack ext type for integers outside [-2**63, 2**64): signed big-endian two's complement."""


def _ext_hook(code: int, data: bytes) -> object:
    if code == BIGINT_EXT_CODE and data:
        return int.from_bytes(data, "big", signed=True)
    raise ValueError(f"unknown msgpack ext type {code}")


def _msgpack_default(value: object) -> object:
    if isinstance(value, int):
        length = (value.bit_length() + 8) // 8
        return msgpack.ExtType(BIGINT_EXT_CODE, value.to_bytes(length, "big", signed=True))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a message payload")


_PLAIN_TYPES = frozenset({str, int, float, bool, bytes})
"""Field types whose value msgpack gives back exactly as the model holds it (no serializer)."""
_plain_fields: dict[type, bool] = {}


def _plain(cls: type[Message]) -> bool:
    """Whether every field of ``cls`` is a plain str, int, float, bool or bytes (no alias,
    constraint or exclusion from the dump) and nothing between the payload and the model
    transforms values (no validator, serializer, computed field or own encoding). For such a
    class a decoded value of the very type and value the model holds is exactly what the
    canonical re-encoding would give back."""
    plain = _plain_fields.get(cls)
    if plain is None:
        decorators = cls.__pydantic_decorators__
        plain = (
            cls.encode_payload is Message.encode_payload
            and cls.model_dump is BaseModel.model_dump
            and not any(
                (
                    decorators.validators,
                    decorators.field_validators,
                    decorators.root_validators,
                    decorators.field_serializers,
                    decorators.model_serializers,
                    decorators.model_validators,
                    decorators.computed_fields,
                )
            )
            and all(
                field.annotation in _PLAIN_TYPES
                and not field.metadata
                and not field.exclude  # left out of the payload this node would encode
                and getattr(field, "exclude_if", None) is None
                and field.alias is None
                and field.validation_alias is None
                and field.serialization_alias is None
                for field in cls.model_fields.values()
            )
        )
        _plain_fields[cls] = plain
    return plain


def _held_as_sent(message: Message, data: dict[Any, Any]) -> bool:
    """Whether every value in ``data`` is held by ``message`` with the same type and value (a
    NaN never is: the caller then runs the full check)."""
    held = message.__dict__
    for key, value in data.items():
        kept = held.get(key, _MISSING)
        if type(value) is not type(kept) or value != kept:
            return False
    return True


_MISSING = object()


def _same(sent: object, canonical: object) -> bool:
    """Equal *and* of the same msgpack types all the way down (``True`` is not ``1``)."""
    if type(sent) is not type(canonical):
        return False
    if isinstance(sent, dict):
        assert isinstance(canonical, dict)
        return sent.keys() == canonical.keys() and all(
            _same(value, canonical[key]) for key, value in sent.items()
        )
    if isinstance(sent, list):
        assert isinstance(canonical, list)
        return len(sent) == len(canonical) and all(map(_same, sent, canonical))
    if isinstance(sent, float) and sent != sent:  # NaN
        return canonical != canonical
    return sent == canonical


class Message(BaseModel):
    """Base class of every bus message: a frozen pydantic model with a registered tag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    axl_tag: ClassVar[str] = ""
    axl_version: ClassVar[int] = 1

    def __init_subclass__(
        cls,
        *,
        tag: str | None = None,
        version: int = 1,
        registry: MessageRegistry | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if tag is None:
            cls.axl_tag = ""
            return
        if not _TAG_PATTERN.match(tag):
            raise MessageTypeError(
                f"message tag {tag!r} must be dotted lower-case words, e.g. 'market.job_posted'"
            )
        if not isinstance(version, int) or not 1 <= version < 2**16:
            raise MessageTypeError(f"message version must be an int in [1, 65535], got {version!r}")
        cls.axl_tag = tag
        cls.axl_version = version
        (registry if registry is not None else default_registry).register(cls)

    def encode_payload(self) -> bytes:
        """The msgpack payload of this message (a map of its fields)."""
        data = self.model_dump(mode="python")
        packed: bytes = msgpack.packb(data, default=_msgpack_default, use_bin_type=True)
        return packed

    @classmethod
    def decode_payload(cls, payload: bytes) -> Message:
        """Parse and validate a payload; raises :class:`InvalidMessage` with the field path."""
        try:
            data = msgpack.unpackb(payload, raw=False, strict_map_key=True, ext_hook=_ext_hook)
        except Exception as exc:
            raise InvalidMessage(f"{cls.axl_tag}: payload is not msgpack: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidMessage(f"{cls.axl_tag}: payload must be a map, got {type(data).__name__}")
        try:
            message = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(part) for part in first["loc"]) or "<root>"
            raise InvalidMessage(
                f"{cls.axl_tag} v{cls.axl_version}: field {path}: {first['msg']}"
                + (f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else "")
            ) from exc
        # Strict types: pydantic's lax mode would take ``true`` for 1, ``"5"`` for 5, 1 for
        # 1.0. Every field sent must be exactly what this node would encode for the value.
        if _plain(cls) and _held_as_sent(message, data):
            return message  # what the re-encoding below would prove, without it
        canonical = msgpack.unpackb(
            message.encode_payload(), raw=False, strict_map_key=True, ext_hook=_ext_hook
        )
        for key, value in data.items():
            if not _same(value, canonical.get(key)):
                raise InvalidMessage(
                    f"{cls.axl_tag} v{cls.axl_version}: field {key}: {type(value).__name__} "
                    f"{value!r:.40} is not the field's msgpack type (types are strict)"
                )
        return message


class ErrorReply(Message, tag="axl.error"):
    """The payload of an error response to a request."""

    code: str
    detail: str = ""

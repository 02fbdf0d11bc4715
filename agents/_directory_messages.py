"""The built-in Directory's messages: who offers which service.

They live apart from :mod:`agents._directory` so the base :class:`~agents.Agent` (whose
``find()`` asks the directory and whose advertising timer publishes to it) imports the messages
without importing the Directory agent, which subclasses it.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from axl import Message, PeerId

DIRECTORY_TOPIC = "agent.directory"
"""The topic providers advertise on and the directory listens to."""

_SERVICE_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"
_SERVICE_RE = re.compile(_SERVICE_PATTERN)


class Advertise(Message, tag="agent.directory.advertise"):
    """A provider announces (or renews) the services it offers, valid for ``ttl`` seconds."""

    name: str = Field(max_length=128)
    services: list[str] = Field(max_length=32)
    ttl: float = Field(default=90.0, gt=0, le=86_400)


class Withdraw(Message, tag="agent.directory.withdraw"):
    """A provider stops offering ``services`` (all of them when empty)."""

    services: list[str] = Field(default_factory=list, max_length=32)


class FindProviders(Message, tag="agent.directory.find"):
    """Ask the directory who offers ``service``; the reply is :class:`Providers`."""

    service: str = Field(pattern=_SERVICE_PATTERN)
    limit: int = Field(default=100, ge=1, le=1000)


class Provider(BaseModel):
    """One provider of a service: its peer id, advertised name and seconds left to live."""

    model_config = ConfigDict(frozen=True)

    peer: PeerId
    name: str
    expires_in: float


class Providers(Message, tag="agent.directory.providers"):
    """The answer to :class:`FindProviders`, most recently renewed first."""

    service: str
    providers: list[Provider]


class Registered(Message, tag="agent.directory.registered"):
    """The directory's acknowledgement when an :class:`Advertise` came as a request."""

    services: list[str]
    ttl: float

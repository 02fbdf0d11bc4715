"""Message types shared by the agents tests (tags are global, so they are declared once)."""

from __future__ import annotations

from axl import Message


class Hello(Message, tag="test_agents.hello"):
    text: str


class Echo(Message, tag="test_agents.echo"):
    text: str


class Slow(Message, tag="test_agents.slow"):
    seconds: float


class Boom(Message, tag="test_agents.boom"):
    detail: str = "boom"


class Note(Message, tag="test_agents.note"):
    value: int

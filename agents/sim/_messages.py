"""The simulator's own message: what a spammer floods the bus with (signed, then broken on
the way out). The market's messages are ``agents.market``'s."""

from __future__ import annotations

from axl import Message


class Spam(Message, tag="sim.spam"):
    """Spammer → anyone: a message nobody handles, sent with a broken signature."""

    n: int

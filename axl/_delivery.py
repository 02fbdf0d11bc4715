"""The topic delivery rule, sans IO: which topic messages a subscriber handles.

At-most-once per subscriber (the replay window does that part), and only messages published
no earlier than the subscriber joined the topic and at most ``max_age_ms`` old on arrival; see
``docs/wire.md`` ("Semantics"). A transport that replays old messages (gossip caches, queues
flushed on (re)subscription) cannot make a subscriber handle them.
"""

from __future__ import annotations

from ._wire import Envelope


class TopicGate:
    """Per-topic join times and the admission check for topic envelopes."""

    def __init__(self, max_age_ms: int) -> None:
        self.max_age_ms = max_age_ms
        self._joined_at: dict[str, int] = {}

    def joining(self, topic: str, now_ms: int) -> int:
        """Record the join time (kept if already set); returns it."""
        return self._joined_at.setdefault(topic, now_ms)

    def left(self, topic: str) -> None:
        self._joined_at.pop(topic, None)

    def refusal(self, envelope: Envelope, now_ms: int) -> str | None:
        """``None`` to deliver, else the drop counter's suffix."""
        assert envelope.topic is not None
        joined_at = self._joined_at.get(envelope.topic)
        if joined_at is None:
            return "topic_not_joined"
        if envelope.timestamp_ms < joined_at:
            return "topic_before_join"
        if now_ms - envelope.timestamp_ms > self.max_age_ms:
            return "topic_stale"
        return None

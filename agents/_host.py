"""What an :class:`~agents.Agent` sees of the runtime that hosts it.

The base class talks to its runtime only through this protocol, so :mod:`agents._agent`
does not import :mod:`agents._runtime` (which imports the base class).
:class:`~agents.AgentRuntime` satisfies it.
"""

from __future__ import annotations

from typing import Any, Protocol

from axl import PeerId


class AgentHost(Protocol):
    """The runtime as its agents use it: names to peer ids, stopping."""

    @property
    def names(self) -> list[str]:
        """Every known name: local agents and added peers."""
        ...

    @property
    def running(self) -> bool: ...

    def peer(self, name: str) -> PeerId:
        """The peer id of a local agent or an added peer; raises ``UnknownAgent``."""
        ...

    def stop(self) -> None:
        """Stop every agent of the runtime gracefully."""
        ...

    def _request_stop(self, agent: Any) -> None:
        """Stop one agent gracefully (``Agent.stop()`` calls it)."""
        ...

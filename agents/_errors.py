"""The exception hierarchy of the ``agents`` package, rooted at :class:`AgentError`."""

from __future__ import annotations

from axl import AxlError


class AgentError(AxlError):
    """Base class of every error raised by ``agents``."""


class AgentDefinitionError(AgentError):
    """An agent class is declared wrongly (e.g. two ``@on`` handlers for one message type)."""


class UnknownAgent(AgentError):
    """A name was not found among the runtime's agents and known peers; add it with
    ``runtime.add(...)`` or ``runtime.add_peer(name, peer_id)``."""


class AgentNotRunning(AgentError):
    """The agent is not running (not started yet, or stopped); it cannot send or receive."""


class AgentStartError(AgentError):
    """An agent's ``on_start`` raised; the agent was not started. The cause is chained."""


class UnexpectedReply(AgentError):
    """A request got a reply of another type than the caller expected."""


class StateError(AgentError):
    """Agent state could not be stored: a value is not JSON-serialisable or the store failed."""

"""AXL agents: subclass :class:`Agent`, declare ``@on`` handlers and ``@every`` tasks, run
them in an :class:`AgentRuntime` (one agent on a volunteer machine, or thousands in a
simulation). See docs/agents.md.
"""

from axl import Context

from ._agent import Agent, Status
from ._decorators import every, on
from ._directory import (
    DIRECTORY_TOPIC,
    Advertise,
    Directory,
    FindProviders,
    Provider,
    Providers,
    Registered,
    Withdraw,
)
from ._errors import (
    AgentDefinitionError,
    AgentError,
    AgentNotRunning,
    AgentStartError,
    StateError,
    UnexpectedReply,
    UnknownAgent,
)
from ._logging import AgentLog, JsonFormatter, configure_logging
from ._runtime import AgentRuntime, TransportFactory, libp2p_transport
from ._state import State

__all__ = [
    "DIRECTORY_TOPIC",
    "Advertise",
    "Agent",
    "AgentDefinitionError",
    "AgentError",
    "AgentLog",
    "AgentNotRunning",
    "AgentRuntime",
    "AgentStartError",
    "Context",
    "Directory",
    "FindProviders",
    "JsonFormatter",
    "Provider",
    "Providers",
    "Registered",
    "State",
    "StateError",
    "Status",
    "TransportFactory",
    "UnexpectedReply",
    "UnknownAgent",
    "Withdraw",
    "configure_logging",
    "every",
    "libp2p_transport",
    "on",
]

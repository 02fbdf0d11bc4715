"""The public API of ``agents`` is pinned: additions and removals are deliberate."""

from __future__ import annotations

import agents


def test_public_names() -> None:
    assert sorted(agents.__all__) == sorted(
        [
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
    )
    for name in agents.__all__:
        assert getattr(agents, name) is not None


def test_one_error_hierarchy_rooted_in_axl() -> None:
    from axl import AxlError

    for name in agents.__all__:
        value = getattr(agents, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, agents.AgentError)
    assert issubclass(agents.AgentError, AxlError)

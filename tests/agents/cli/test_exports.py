"""The public API of ``agents.cli`` is pinned: additions and removals are deliberate."""

from __future__ import annotations

import agents.cli


def test_public_names() -> None:
    assert sorted(agents.cli.__all__) == ["CliError", "app", "main"]
    for name in agents.cli.__all__:
        assert getattr(agents.cli, name) is not None
    assert issubclass(agents.cli.CliError, agents.AgentError)

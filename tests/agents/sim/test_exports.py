"""The public API of ``agents.sim`` is pinned: additions and removals are deliberate."""

from __future__ import annotations

import agents.sim


def test_public_names() -> None:
    assert sorted(agents.sim.__all__) == sorted(
        [
            "CHEAT_KINDS",
            "Adversaries",
            "InvalidScenario",
            "Jobs",
            "Market",
            "Network",
            "Partition",
            "Report",
            "Roles",
            "Scenario",
            "SimulationError",
            "SweepResult",
            "app",
            "simulate",
            "sweep",
        ]
    )
    for name in agents.sim.__all__:
        assert getattr(agents.sim, name) is not None

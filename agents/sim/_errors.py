"""Errors of the swarm simulator."""

from __future__ import annotations

from .._errors import AgentError


class SimulationError(AgentError):
    """Base class of the simulator's errors."""


class InvalidScenario(SimulationError):
    """A scenario (TOML, mapping or flags) that does not validate; the message says where."""

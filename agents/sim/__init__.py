"""Swarm simulations: a market of many agents — honest and adversarial — on the memory network
and the embedded chain, in virtual time, from a seeded scenario, with a report and plots.

    from agents.sim import Scenario, simulate
    report = simulate(Scenario.load("swarm.toml"), out_dir="report/")

See docs/simulation.md. :data:`app` is the ``swarm`` command line (typer):
``python -m agents.sim simulate|sweep``, and ``axl swarm ...`` once wired into ``axl``.
"""

from ._cli import app
from ._errors import InvalidScenario, SimulationError
from ._report import Report
from ._runner import simulate
from ._scenario import (
    CHEAT_KINDS,
    Adversaries,
    Jobs,
    Market,
    Network,
    Partition,
    Roles,
    Scenario,
)
from ._sweep import SweepResult, sweep

__all__ = [
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

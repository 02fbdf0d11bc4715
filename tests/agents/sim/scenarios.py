"""Small scenarios the simulator tests share (a few jobs each, so a run takes seconds)."""

from __future__ import annotations

from typing import Any

from agents.sim import CHEAT_KINDS, Scenario

SMALL: dict[str, Any] = {
    "duration": 180,
    "drain": 4700,
    "sample_interval": 30,
    "spam_rate": 0.5,
    "roles": {"submitters": 1, "solvers": 4, "verifiers": 2, "spammers": 1},
    "jobs": {
        "rate_per_hour": 120,
        "checkers": 2,
        "candidates": 1,
        "deadline": 120,
        "steps": [2, 3],
    },
    "market": {"challenge_window": 600, "dispute_window": 3600, "settle_interval": 10},
}


def adversarial(seed: int) -> Scenario:
    """Four solvers — one honest, two cheating in different ways (which ways depends on the
    seed, so 20 seeds cover every kind), one lazy — and two verifiers that both check every
    job: one honest, one accusing honest solvers falsely. A spammer floods everyone."""
    first = CHEAT_KINDS[seed % len(CHEAT_KINDS)]
    second = CHEAT_KINDS[(seed + 3) % len(CHEAT_KINDS)]
    return Scenario.parse(
        {
            **SMALL,
            "seed": seed,
            "adversaries": {"cheats": {first: 1, second: 1}, "lazy": 1, "false_accusers": 1},
        }
    )

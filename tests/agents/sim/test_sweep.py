"""The seeded sweep CI runs: small adversarial swarms over 20 seeds. In every run every cheat
whose job an honest verifier checked is caught, honest agents lose no stake, and supply,
escrow and stake conserve (from chain events, cross-checked with the contracts)."""

from __future__ import annotations

import pytest

from agents.sim import sweep

from .scenarios import adversarial

SEEDS = range(20)


@pytest.mark.slow
def test_sweep_catches_every_checked_cheat_and_honest_stake_is_safe() -> None:
    rows = []
    for seed in SEEDS:
        result = sweep(adversarial(seed), [seed])
        rows += result.rows
    failed = [row for row in rows if not row["ok"]]
    assert not failed, failed
    assert all(row["honest stake lost"] == 0 for row in rows)
    assert all(row["conserved"] for row in rows)
    assert all(row["missed when checked"] == 0 for row in rows)
    # The sweep exercises what it claims: cheats happened and were caught across the seeds.
    assert sum(row["caught"] for row in rows) >= len(SEEDS)

"""Same seed, same report, byte for byte; another seed, another report."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.sim import simulate

from .scenarios import adversarial


@pytest.mark.slow
def test_one_seed_gives_identical_summaries_and_report_files(tmp_path: Path) -> None:
    first = simulate(adversarial(3), out_dir=tmp_path / "a")
    second = simulate(adversarial(3), out_dir=tmp_path / "b")
    assert first.summary == second.summary
    assert first.summary["jobs"]["total"] > 0
    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert {str(n) for n in names} >= {"summary.json", "report.md", "plots/jobs.png"}
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = simulate(adversarial(4))
    assert other.summary != first.summary

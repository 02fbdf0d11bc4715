"""The live display draws the simulated time and jobs by state, and is off by default when
stdout is not a terminal."""

from __future__ import annotations

import pytest

from agents.sim import Scenario
from agents.sim._metrics import STATES, Sample
from agents.sim._progress import Progress


def _sample() -> Sample:
    jobs = dict.fromkeys(STATES, 0) | {"settled": 7}
    return Sample(60.0, jobs, {"sim.award": 2.5}, {}, {}, 0, 0)


def test_progress_shows_time_and_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(enabled=True) as progress:
        progress.update(_sample(), Scenario())
    out = capsys.readouterr().out
    assert "60 / 8,400 s" in out and "settled" in out and "7" in out


def test_progress_is_off_when_not_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress() as progress:
        assert not progress.enabled
        progress.update(_sample(), Scenario())
    assert capsys.readouterr().out == ""

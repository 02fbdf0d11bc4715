"""`[role]` tables of `axl run`: the referee's keys reach its config; a bad value is one line."""

from __future__ import annotations

import pytest

from agents.cli import CliError
from agents.cli._market import _referee
from agents.market import Referee


def test_the_referee_table_sets_its_query_patience() -> None:
    agent = _referee({"query_timeout": 5, "query_patience": 90}, None)
    assert isinstance(agent, Referee)
    assert (agent.config.query_timeout, agent.config.query_patience) == (5.0, 90.0)
    default = _referee({}, None)
    assert isinstance(default, Referee)
    assert default.config.query_patience == 0.0


def test_a_negative_query_patience_is_refused_in_one_line() -> None:
    with pytest.raises(CliError, match="query_patience for the referee: at least 0"):
        _referee({"query_patience": -1}, None)

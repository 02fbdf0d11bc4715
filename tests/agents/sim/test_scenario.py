"""The scenario model: TOML and mappings in, typed and validated config out."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sim import CHEAT_KINDS, InvalidScenario, Scenario
from compute import Cheat


def test_defaults_validate_and_count_every_agent() -> None:
    scenario = Scenario()
    roles = scenario.roles
    assert scenario.agents == roles.submitters + roles.solvers + roles.verifiers + 1


def test_cheat_kinds_are_the_compute_layers() -> None:
    for kind in CHEAT_KINDS:
        Cheat(kind)  # type: ignore[arg-type]
    assert "wrong_op" in CHEAT_KINDS and "silent" in CHEAT_KINDS


def test_toml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "t"\nseed = 7\nduration = 120\n'
        "[roles]\nsolvers = 5\nverifiers = 2\n"
        "[adversaries]\ncheats = { wrong_op = 1, garbage = 1 }\nlazy = 1\n"
        "[network]\nloss = 0.01\n"
        "[[network.partitions]]\nstart = 10\nduration = 30\nshare = 0.25\n"
    )
    scenario = Scenario.load(path)
    assert scenario.seed == 7 and scenario.roles.solvers == 5
    assert scenario.adversaries.cheats == {"wrong_op": 1, "garbage": 1}
    assert scenario.network.partitions[0].share == 0.25
    assert Scenario.parse(scenario.model_dump()) == scenario


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"roles": {"solvers": 2}, "adversaries": {"lazy": 2, "vanishing": 1}}, "dishonest"),
        ({"roles": {"verifiers": 1}, "adversaries": {"false_accusers": 2}}, "dishonest"),
        ({"adversaries": {"cheats": {"bribe": 1}}}, "unknown cheat"),
        ({"network": {"loss": 1.0}}, "network.loss"),
        ({"duration": 10, "network": {"partitions": [{"start": 20, "duration": 5}]}}, "after"),
        ({"jobs": {"steps": [5, 2]}}, "min <= max"),
        ({"roles": {"solvers": 2**70}}, "roles.solvers"),
        ({"surprise": 1}, "surprise"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_scenarios_say_where(data: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidScenario, match=where):
        Scenario.parse(data)


def test_bad_toml_is_an_invalid_scenario(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("roles = [")
    with pytest.raises(InvalidScenario):
        Scenario.load(path)
    with pytest.raises(InvalidScenario):
        Scenario.load(tmp_path / "missing.toml")


def test_with_changes_applies_dotted_keys_and_refuses_unknown_ones() -> None:
    scenario = Scenario().with_changes({"roles.solvers": 9, "seed": 4, "network.loss": 0.1})
    assert (scenario.roles.solvers, scenario.seed, scenario.network.loss) == (9, 4, 0.1)
    with pytest.raises(InvalidScenario, match=r"roles\.solver"):
        Scenario().with_changes({"roles.solver": 1})
    with pytest.raises(InvalidScenario, match="section"):
        Scenario().with_changes({"seed.x": 1})


@settings(max_examples=50)
@given(
    solvers=st.integers(1, 50),
    lazy=st.integers(0, 60),
    vanishing=st.integers(0, 60),
    pairs=st.integers(0, 30),
    verifiers=st.integers(0, 30),
)
def test_adversaries_never_outnumber_their_roles(
    solvers: int, lazy: int, vanishing: int, pairs: int, verifiers: int
) -> None:
    data = {
        "roles": {"solvers": solvers, "verifiers": verifiers},
        "adversaries": {"lazy": lazy, "vanishing": vanishing, "colluding_pairs": pairs},
    }
    fits = lazy + vanishing + pairs <= solvers and pairs <= verifiers
    if fits:
        Scenario.parse(data)
    else:
        with pytest.raises(InvalidScenario):
            Scenario.parse(data)


def test_the_example_scenario_validates() -> None:
    path = Path(__file__).parents[3] / "examples" / "swarm_scenario.toml"
    scenario = Scenario.load(path)
    assert scenario.adversaries.dishonest_solvers == 6

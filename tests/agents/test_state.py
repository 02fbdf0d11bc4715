"""Persisted agent state: the SQLite store, and agents resuming after a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from agents import Agent, AgentRuntime, State, StateError, every


def test_memory_only_state_behaves_like_a_dict() -> None:
    state = State(None)
    state["a"] = 1
    state.setdefault("b", [1, 2])
    assert dict(state) == {"a": 1, "b": [1, 2]}
    assert state.flush() == 2  # counted, nothing written
    assert state.path is None


def test_values_must_be_json(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite")
    with pytest.raises(StateError, match="must be JSON"):
        state["x"] = {1, 2}
    with pytest.raises(StateError, match="must be JSON"):
        state["nan"] = float("nan")
    assert "x" not in state


def test_flush_writes_changes_only_and_tracks_in_place_edits(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.sqlite"
    state = State(path)
    assert not state.dirty
    state["n"] = 1
    state["items"] = [1]
    assert state.dirty
    assert state.flush() == 2
    assert state.flush() == 0
    state["items"].append(2)  # in-place change
    assert state.flush() == 1
    del state["n"]
    assert state.flush() == 1
    reloaded = State(path)
    assert dict(reloaded) == {"items": [1, 2]}
    rows = sqlite3.connect(path).execute("SELECT key, value FROM state").fetchall()
    assert rows == [("items", "[1,2]")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
operations = st.lists(
    st.tuples(st.sampled_from(["set", "del", "flush"]), st.sampled_from("abcd"), json_values),
    max_size=30,
)


@given(ops=operations)
def test_reload_after_flush_equals_a_plain_dict(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str, Any]]
) -> None:
    path = tmp_path_factory.mktemp("state") / "state.sqlite"
    state = State(path)
    model: dict[str, Any] = {}
    for op, key, value in ops:
        if op == "set":
            state[key] = value
            model[key] = value
        elif op == "del" and key in model:
            del state[key]
            del model[key]
        elif op == "flush":
            state.flush()
            assert dict(State(path)) == model
    state.flush()
    assert dict(State(path)) == model


class Counter(Agent):
    def __init__(self) -> None:
        super().__init__("counter")
        self.stopped = False

    async def on_start(self) -> None:
        self.state["starts"] = self.state.get("starts", 0) + 1

    @every(1.0)
    async def count(self) -> None:
        self.state["ticks"] = self.state.get("ticks", 0) + 1

    async def on_stop(self) -> None:
        self.state["clean_stop"] = True
        self.stopped = True


async def test_restarted_agent_resumes_with_same_identity_and_state(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    first = Counter()
    async with AgentRuntime([first], data_dir=tmp_path, flush_interval=None):
        await trio.sleep(3.5)
    assert first.stopped
    assert (tmp_path / "counter" / "identity.key").stat().st_mode & 0o777 == 0o600

    second = Counter()
    async with AgentRuntime([second], data_dir=tmp_path):
        assert second.peer_id == first.peer_id
        assert second.state["starts"] == 2
        assert second.state["ticks"] == 3
        await trio.sleep(2.5)
    assert dict(State(tmp_path / "counter" / "state.sqlite")) == {
        "starts": 2,
        "ticks": 5,
        "clean_stop": True,
    }


async def test_state_is_flushed_periodically_while_running(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    agent = Counter()
    async with AgentRuntime([agent], data_dir=tmp_path, flush_interval=4.5):
        await trio.sleep(4.75)
        on_disk = State(tmp_path / "counter" / "state.sqlite")
        assert dict(on_disk) == {"starts": 1, "ticks": 4}


class Unflushable(Agent):
    async def on_start(self) -> None:
        self.state["ok"] = 1


async def test_flush_failure_is_logged_and_counted_not_fatal(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    agent = Unflushable()
    async with AgentRuntime([agent], data_dir=tmp_path):
        await trio.sleep(1)
        (tmp_path / "unflushable" / "state.sqlite").mkdir(parents=True)  # the file is blocked
    assert agent.counters()["state_errors"] == 1
    assert agent.status.value == "stopped"


def test_check_reports_a_corrupt_file_in_one_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot read agent state"):
        State(path).check()


def test_check_reports_a_corrupt_value(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    state = State(path)
    state["ok"] = 1
    state.flush()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE state SET value = '{not json' WHERE key = 'ok'")
    db.close()
    with pytest.raises(StateError, match="corrupt value for 'ok'"):
        State(path).check()
    State(tmp_path / "absent.sqlite").check()  # no file yet: fine

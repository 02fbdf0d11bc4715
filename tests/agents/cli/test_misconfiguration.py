"""Every user mistake found when tried as a new user would: one ``axl: …`` line on stderr and
a non-zero exit status, never a traceback."""

from __future__ import annotations

import os
import socket
import sqlite3
import textwrap
from pathlib import Path

import pytest

from agents import Directory
from agents.cli._checks import make_agent, parse_arguments
from agents.cli._datadir import locked
from axl import Identity

from .conftest import Axl, one_line

PONGER = "examples.ping_pong:Ponger"
PEER = str(Identity.from_seed(b"\1" * 32).peer_id)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nosuch.module:Agent"], 2, "cannot import 'nosuch.module'"),
        (["examples.ping_pong"], 2, "expected module:Class"),
        (["examples.ping_pong:Nope"], 2, "has no 'Nope'"),
        (["examples.ping_pong:Ping"], 2, "is not an agents.Agent subclass"),
        ([PONGER, "--listen", "notamultiaddr"], 2, "--listen 'notamultiaddr' is not a multiaddr"),
        ([PONGER, "--listen", "/ip4/127.0.0.1/udp/4001"], 2, "give an IP and a TCP port"),
        ([PONGER, "--peer", "name"], 2, "expected NAME=PEER_ID"),
        ([PONGER, "--peer", "name=12D3nope"], 2, "is not a peer id"),
        ([PONGER, "--log-level", "LOUD"], 2, "--log-level 'LOUD': use one of"),
        ([PONGER, "--bootstrap", "/ip4/127.0.0.1/tcp/4001"], 2, "give the peer's TCP address"),
        ([PONGER, "--bootstrap", "garbage"], 2, "--bootstrap 'garbage' is not a multiaddr"),
        ([PONGER, "--arg", "x=1"], 2, "Ponger(x) failed: TypeError"),
        ([PONGER, "--arg", "not an identifier=1"], 2, "expected KEY=VALUE"),
        ([PONGER, "--status-port", "70000"], 2, "a TCP port is 0-65535"),
        ([PONGER, "--http-host", "localhost"], 2, "is not an IP address"),
        ([PONGER, "--no-such-option"], 2, "No such option: --no-such-option"),
        (["status", "--url", "http://127.0.0.1:9"], 1, "no axl node answers at"),
    ],
)
def test_command_line_mistakes(
    axl: Axl, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    status, _, err = axl(*args, *(["--data-dir", str(tmp_path)] if args[0] != "status" else []))
    assert status == code
    assert message in one_line(err)
    assert not list(tmp_path.glob("*/identity.key"))  # refused before anything was created


def test_agent_definition_error_is_one_line(
    axl: Axl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "badagent.py").write_text(
        textwrap.dedent(
            """
            from agents import Agent, every

            class Bad(Agent):
                @every(1.0)
                async def tick(self, n):
                    pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err = axl("badagent:Bad", "--data-dir", str(tmp_path / "data"))
    assert status == 2
    assert "agent definition error in badagent: @every: Bad.tick(self, n)" in one_line(err)


def test_a_module_that_fails_to_import_is_one_line(
    axl: Axl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('half-written module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err = axl("broken:Agent", "--data-dir", str(tmp_path / "data"))
    assert status == 2
    assert "importing broken failed: RuntimeError: half-written module" in one_line(err)


def test_world_readable_key_file(axl: Axl, tmp_path: Path) -> None:
    key = tmp_path / "ponger" / "identity.key"
    Identity.generate().save(key)
    os.chmod(key, 0o644)
    status, _, err = axl(PONGER, "--data-dir", str(tmp_path))
    assert status == 2
    assert "has mode 0644; run `chmod 600" in one_line(err)


def test_corrupt_key_file(axl: Axl, tmp_path: Path) -> None:
    key = tmp_path / "ponger" / "identity.key"
    key.parent.mkdir()
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n")
    os.chmod(key, 0o600)
    status, _, err = axl(PONGER, "--data-dir", str(tmp_path))
    assert status == 2
    assert "is corrupt or encrypted" in one_line(err)


def test_corrupt_state_file_stops_start_up(axl: Axl, tmp_path: Path) -> None:
    state = tmp_path / "ponger" / "state.sqlite"
    state.parent.mkdir()
    state.write_bytes(b"not a database " * 200)
    status, _, err = axl(PONGER, "--data-dir", str(tmp_path))
    assert status == 1
    assert "cannot read agent state" in one_line(err)


def test_corrupt_state_value_stops_start_up(axl: Axl, tmp_path: Path) -> None:
    state = tmp_path / "ponger" / "state.sqlite"
    state.parent.mkdir()
    with sqlite3.connect(state) as db:
        db.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO state VALUES ('seq', '{oops')")
    db.close()
    status, _, err = axl(PONGER, "--data-dir", str(tmp_path))
    assert status == 1
    assert "corrupt value for 'seq'" in one_line(err)


def test_data_directory_locked_by_another_process(axl: Axl, tmp_path: Path) -> None:
    with locked(tmp_path / "node"):
        status, _, err = axl("node", "--data-dir", str(tmp_path / "node"))
    assert status == 1
    assert f"is in use by another axl process (pid {os.getpid()})" in one_line(err)


def test_listen_port_in_use(axl: Axl, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = axl(
            PONGER, "--data-dir", str(tmp_path), "--listen", f"/ip4/127.0.0.1/tcp/{port}"
        )
    assert status == 1
    assert f"cannot listen on /ip4/127.0.0.1/tcp/{port}" in one_line(err)


def test_status_without_a_running_node(axl: Axl, tmp_path: Path) -> None:
    status, _, err = axl("status", "--data-dir", str(tmp_path))
    assert status == 1
    assert "no running node in" in one_line(err)


def test_bad_config_file(axl: Axl, tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("capacity = [unclosed\n")
    status, _, err = axl("agents:Directory", "--config", str(config), "--data-dir", str(tmp_path))
    assert status == 2
    assert "is not valid TOML" in one_line(err)
    status, _, err = axl(
        "agents:Directory", "--config", str(tmp_path / "nope.toml"), "--data-dir", str(tmp_path)
    )
    assert status == 2
    assert "No such file" in one_line(err)


def test_constructor_arguments_from_config_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "directory.toml"
    config.write_text('name = "dir2"\ncapacity = 5\n')
    kwargs = parse_arguments(["capacity=7"], config)  # flags override the file
    agent = make_agent(Directory, kwargs)
    assert isinstance(agent, Directory)
    assert (agent.name, agent.capacity) == ("dir2", 7)
    assert parse_arguments(["text=hello world", "items=[1, 2]"], None) == {
        "text": "hello world",
        "items": [1, 2],
    }

"""Structured logs: agent, peer and message id on every record; JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import trio

from agents import Agent, AgentRuntime, Context, JsonFormatter, configure_logging, on

from .messages import Note


class Logger(Agent):
    @on(Note)
    async def note(self, msg: Note, ctx: Context) -> None:
        self.log.info("got note %d", msg.value, extra={"value": msg.value})

    async def on_start(self) -> None:
        self.log.info("up")


async def test_records_carry_agent_peer_and_message(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    agent, other = Logger(), Logger(name="other")
    with caplog.at_level(logging.INFO, logger="agents"):
        async with AgentRuntime([agent, other]):
            await other.send("logger", Note(value=7))
            await trio.sleep(0.1)
    up = next(r for r in caplog.records if r.getMessage() == "up" and r.name == "agents.logger")
    assert up.__dict__["agent"] == "logger"
    assert up.__dict__["peer"] == str(agent.peer_id)
    assert "message_id" not in up.__dict__
    got = next(r for r in caplog.records if r.getMessage() == "got note 7")
    assert got.__dict__["message_type"] == "test_agents.note"
    assert len(got.__dict__["message_id"]) == 32
    assert got.__dict__["value"] == 7


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name in ("agents", "axl"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def test_json_formatter_and_configure_logging(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(logging.INFO, json_lines=True, stream=stream)
    log = logging.getLogger("agents.x")
    log.info("hello %s", "world", extra={"agent": "x", "peer": "12D3", "n": 3})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "hello world"
    assert (first["agent"], first["peer"], first["n"], first["level"]) == ("x", "12D3", 3, "INFO")
    assert "ValueError: bad" in second["exception"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "m"})), str)


def test_py_libp2p_log_lines_go_through_json_logs(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", json_lines=True, stream=stream)
    logging.getLogger("libp2p.network.swarm").warning("fail to connect %s", "peer")
    logging.getLogger("libp2p.pubsub").info("chatter")  # third-party INFO stays out
    pinned = logging.getLogger("libp2p.network.auto_connector")
    pinned.setLevel(logging.INFO)  # as py-libp2p does for this one
    pinned.info("AUTO_CONNECTOR_STATE")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert (record["logger"], record["message"]) == ("libp2p.network.swarm", "fail to connect peer")

"""Validation of what a user types or points to, each failing with one :class:`CliError` line:
multiaddrs, ``NAME=PEER_ID``, log levels, key files, state files, agent classes, arguments."""

from __future__ import annotations

import importlib
import json
import logging
import socket
import tomllib
from pathlib import Path
from typing import Any

from multiaddr import Multiaddr

from axl import AxlError, Identity, InvalidPeerId, PeerId

from .._agent import Agent
from .._errors import AgentDefinitionError, StateError
from .._logging import LOG_LEVELS
from .._state import State
from ._errors import CliError

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def parse_multiaddr(text: str, what: str = "--listen") -> Multiaddr:
    """A multiaddr; raises :class:`CliError` naming ``what`` when ``text`` is not one."""
    try:
        return Multiaddr(text)
    except Exception as exc:  # multiaddr raises several unrelated types
        detail = str(exc).split(" (string:")[0]
        raise CliError(
            f"{what} {text!r} is not a multiaddr ({detail}); e.g. /ip4/0.0.0.0/tcp/4001"
        ) from None


def parse_listen(text: str) -> str:
    """A listen multiaddr with an IP and a TCP port, e.g. ``/ip4/0.0.0.0/tcp/4001``."""
    addr = parse_multiaddr(text, "--listen")
    names = [protocol.name for protocol in addr.protocols()]
    if len(names) < 2 or names[0] not in ("ip4", "ip6") or names[1] != "tcp":
        raise CliError(f"--listen {text!r}: give an IP and a TCP port, e.g. /ip4/0.0.0.0/tcp/4001")
    if "p2p" in names:
        raise CliError(f"--listen {text!r}: a listen address has no /p2p/ part")
    return text


def check_port_free(listen: str) -> None:
    """Raise :class:`CliError` when the TCP port of ``listen`` is already bound here (another
    process listens on it). Port 0 always passes."""
    addr = Multiaddr(listen)
    names = [protocol.name for protocol in addr.protocols()]
    port = int(addr.value_for_protocol("tcp"))
    if port == 0:
        return
    family = socket.AF_INET6 if names[0] == "ip6" else socket.AF_INET
    host = addr.value_for_protocol(names[0])
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliError(
                f"cannot listen on {listen}: {exc.strerror or exc} "
                "(another process uses the port? pick another with --listen)",
                exit_code=1,
            ) from None


def parse_bootstrap(text: str) -> str:
    """A bootstrap multiaddr ending in ``/p2p/<peer id>``."""
    addr = parse_multiaddr(text, "--bootstrap")
    names = [protocol.name for protocol in addr.protocols()]
    if "p2p" not in names or "tcp" not in names:
        raise CliError(
            f"--bootstrap {text!r}: give the peer's TCP address and id, "
            "e.g. /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW..."
        )
    try:
        PeerId.from_string(addr.value_for_protocol("p2p"))
    except (InvalidPeerId, ValueError) as exc:
        raise CliError(f"--bootstrap {text!r}: bad peer id ({exc})") from None
    return text


def parse_peer(text: str) -> tuple[str, PeerId]:
    """``NAME=PEER_ID`` to a name and a peer id."""
    name, sep, peer = text.partition("=")
    if not sep or not name or not peer:
        raise CliError(f"--peer {text!r}: expected NAME=PEER_ID, e.g. directory=12D3KooW...")
    if not set(name) <= _NAME_CHARS:
        raise CliError(f"--peer {text!r}: a name uses letters, digits, '_', '.', '-'")
    try:
        return name, PeerId.from_string(peer)
    except (InvalidPeerId, ValueError) as exc:
        raise CliError(f"--peer {text!r}: {peer!r} is not a peer id ({exc})") from None


def parse_log_level(text: str) -> str:
    """A logging level name (any case)."""
    level = text.upper()
    if level not in LOG_LEVELS:
        raise CliError(f"--log-level {text!r}: use one of {', '.join(LOG_LEVELS)}")
    return level


def load_identity(path: Path, *, create: bool) -> Identity:
    """The Ed25519 identity in ``path``; created (mode 0600) when absent and ``create``.

    Raises :class:`CliError` for a missing (unless ``create``), world-readable or corrupt file.
    """
    try:
        if create:
            return Identity.load_or_create(path)
        return Identity.load(path)
    except AxlError as exc:
        raise CliError(f"key file: {exc}") from None
    except OSError as exc:
        raise CliError(f"key file {path}: {exc.strerror or exc}") from None


def check_state(path: Path) -> None:
    """Raise :class:`CliError` when the state file at ``path`` exists and cannot be read."""
    try:
        State(path).check()
    except StateError as exc:
        raise CliError(f"{exc} (move the file away to start with empty state)", 1) from None


def load_agent_class(spec: str) -> type[Agent]:
    """``"package.module:ClassName"`` to the agent class; raises :class:`CliError`."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise CliError(f"expected module:Class, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise CliError(f"cannot import {module_name!r}: {exc} (is it on PYTHONPATH?)") from None
    except AgentDefinitionError as exc:
        raise CliError(f"agent definition error in {module_name}: {exc}") from None
    except Exception as exc:
        raise CliError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise CliError(f"{module_name} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise CliError(f"{spec} is not an agents.Agent subclass")
    return cls


def parse_arguments(items: list[str], config: Path | None) -> dict[str, Any]:
    """Keyword arguments for an agent class: the top-level keys of a TOML ``config`` file,
    then each ``KEY=VALUE`` (VALUE read as JSON when it parses, else as a string)."""
    kwargs: dict[str, Any] = {}
    if config is not None:
        kwargs.update(load_toml(config))
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise CliError(f"--arg {item!r}: expected KEY=VALUE with a Python identifier as KEY")
        try:
            kwargs[key] = json.loads(raw)
        except ValueError:
            kwargs[key] = raw
    return kwargs


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; raises :class:`CliError` when missing or malformed."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise CliError(f"config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"config {path} is not valid TOML: {exc}") from None


def make_agent(cls: type[Agent], kwargs: dict[str, Any]) -> Agent:
    """``cls(**kwargs)``; raises :class:`CliError` when the class rejects the arguments."""
    try:
        return cls(**kwargs)
    except Exception as exc:
        names = ", ".join(sorted(kwargs)) or "no arguments"
        raise CliError(
            f"{cls.__name__}({names}) failed: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None


def level_number(level: str) -> int:
    """The numeric value of a level name from :data:`LOG_LEVELS`."""
    return int(logging.getLevelName(level))

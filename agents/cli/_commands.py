"""Registers every ``axl`` subcommand on :data:`app` (imported for its side effect)."""

from __future__ import annotations

from . import _cmd_chain, _cmd_keys, _cmd_node, _cmd_run, _cmd_swarm

__all__ = ["_cmd_chain", "_cmd_keys", "_cmd_node", "_cmd_run", "_cmd_swarm"]

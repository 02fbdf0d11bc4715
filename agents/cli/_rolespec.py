"""What ``axl run`` needs to know about a role (kept apart so the role tables import it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._agent import Agent


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """How to run one role: its agent name, the stake role (``coordination.Role`` or None) and
    ``build(role_table, stake_wei) -> Agent`` (``stake_wei`` None: the role's default)."""

    name: str
    stake_role: Any
    build: Callable[[dict[str, Any], int | None], Agent]

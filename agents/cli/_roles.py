"""The built-in market roles ``axl run`` can start, looked up by name. Each entry says what
the role stakes and builds its agent from the ``[role]`` config table and the chain client."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .._agent import Agent
from ._errors import CliError

ROLE_NAMES = ("solver", "verifier", "submitter", "referee")


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """How to run one role: its agent name, the stake role (``coordination.Role`` or None) and
    ``build(role_table, chain) -> Agent``."""

    name: str
    stake_role: Any
    build: Callable[[dict[str, Any], Any], Agent]


def check_role_name(name: str) -> None:
    """Raise :class:`CliError` unless ``name`` is a built-in role."""
    if name not in ROLE_NAMES:
        raise CliError(f"unknown role {name!r}: use one of {', '.join(ROLE_NAMES)}")


def role_spec(name: str) -> RoleSpec:
    """The :class:`RoleSpec` of ``name``; raises :class:`CliError` for an unknown role or one
    whose implementation (``agents.market``) is not in this build."""
    check_role_name(name)
    try:
        market = importlib.import_module("agents.market")
    except ModuleNotFoundError:
        raise CliError(
            f"role {name!r} needs the market roles (agents.market), which this build lacks; "
            "`axl agent module:Class` runs your own agent meanwhile",
            1,
        ) from None
    specs: Callable[[], dict[str, RoleSpec]] | None = getattr(market, "cli_roles", None)
    if specs is None:
        return _generic_spec(market, name)
    return specs()[name]


def _generic_spec(market: Any, name: str) -> RoleSpec:
    """Roles found by convention: class ``Solver`` with a ``SolverConfig`` config model."""
    from coordination import Role

    cls_name = name.capitalize()
    cls = getattr(market, cls_name, None)
    config_cls = getattr(market, f"{cls_name}Config", None)
    if cls is None:
        raise CliError(f"agents.market has no {cls_name} role", 1)
    stake_role = {"solver": Role.SOLVER, "verifier": Role.VERIFIER}.get(name)

    def build(table: dict[str, Any], chain: Any) -> Agent:
        try:
            config = config_cls(**table) if config_cls is not None else None
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise CliError(f"[role] {where} for the {name}: {error['msg']}") from None
        except (TypeError, ValueError) as exc:
            raise CliError(f"[role] for the {name}: {exc}") from None
        agent: Agent = cls(config) if config is not None else cls()
        return agent

    return RoleSpec(name, stake_role, build)

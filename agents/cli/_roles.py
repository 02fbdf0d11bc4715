"""The built-in market roles ``axl run`` can start, looked up by name. Each entry says what
the role stakes and builds its agent from the ``[role]`` config table and the chain client."""

from __future__ import annotations

from ._errors import CliError
from ._rolespec import RoleSpec

ROLE_NAMES = ("solver", "verifier", "submitter", "referee")


def check_role_name(name: str) -> None:
    """Raise :class:`CliError` unless ``name`` is a built-in role."""
    if name not in ROLE_NAMES:
        raise CliError(f"unknown role {name!r}: use one of {', '.join(ROLE_NAMES)}")


def role_spec(name: str) -> RoleSpec:
    """The :class:`RoleSpec` of ``name``; raises :class:`CliError` for an unknown role."""
    check_role_name(name)
    from ._market import cli_roles  # the market roles load only when a role runs

    return cli_roles()[name]

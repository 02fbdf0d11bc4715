"""The ``axl`` command line (typer + rich): ``axl keys``, ``axl chain``, ``axl node``,
``axl run <role>``, ``axl status`` and ``axl agent module:Class``. See docs/volunteer.md."""

from ._app import app, main
from ._errors import CliError

__all__ = ["CliError", "app", "main"]

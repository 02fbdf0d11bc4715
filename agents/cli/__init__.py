"""The ``axl`` command line (typer + rich): ``axl keys``, ``axl chain``, ``axl node``,
``axl run <role>``, ``axl status`` and ``axl agent module:Class``. See docs/volunteer.md."""

from ._app import main
from ._errors import CliError
from ._typer import app

__all__ = ["CliError", "app", "main"]

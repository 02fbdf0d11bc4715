"""The CLI's one error type: a user mistake or an unusable environment, printed as one line."""

from __future__ import annotations

from .._errors import AgentError

USAGE = 2
"""Exit status of a mistake in the command line or the configuration."""
FAILURE = 1
"""Exit status of a failure outside the user's input (a node that does not answer, ...)."""


class CliError(AgentError):
    """A mistake the ``axl`` command reports as one line (``axl: <message>``) and an exit
    status (:data:`USAGE` by default), never a traceback."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(BaseException):
    """SIGTERM arrived before the node was running (keys, chain, staking, imports): ``axl``
    stops there and exits 0, as a running node does on SIGTERM."""

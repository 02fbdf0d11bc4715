"""The ``axl`` command: a typer app. Every mistake is one ``axl: …`` line on stderr and a
non-zero exit status (2: the command line or configuration, 1: the environment)."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import NoReturn

import typer

from . import _commands  # noqa: F401  (registers the commands on the app)
from ._errors import CliError, Terminated
from ._typer import app

COMMANDS = ("agent", "node", "run", "status", "keys", "chain", "swarm")


def main(argv: list[str] | None = None) -> None:
    """The console script ``axl`` (and ``python -m agents``). ``axl module:Class ...`` is read
    as ``axl agent module:Class ...`` (the older ``python -m agents`` form)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in COMMANDS:
        args.insert(0, "agent")
    command = typer.main.get_command(app)
    previous = _on_sigterm(_terminate)
    try:
        code = command.main(args=args, prog_name="axl", standalone_mode=False)
    except Terminated:
        raise SystemExit(0) from None
    except CliError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Abort:
        _fail("aborted", 130)
    except typer.TyperException as exc:  # the command line itself: unknown option, ...
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed
            raise SystemExit(0) from None
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(f"{message} (see axl --help)", int(getattr(exc, "exit_code", 2)))
    finally:
        _on_sigterm(previous)
    raise SystemExit(code if isinstance(code, int) else 0)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _on_sigterm(handler: object) -> object:
    """Install ``handler`` for SIGTERM (the main thread only); the previous one."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGTERM, handler)  # type: ignore[arg-type]
    except ValueError:  # not the main thread: no signals there
        return None


def _fail(message: str, code: int) -> NoReturn:
    line = " ".join(message.split())
    print(f"axl: {line}", file=sys.stderr, flush=True)
    raise SystemExit(code)

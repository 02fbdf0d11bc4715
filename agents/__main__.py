"""``python -m agents`` is the ``axl`` command: ``python -m agents module:Class ...`` runs one
agent class (same as ``axl agent module:Class ...``); see ``axl --help`` and docs/volunteer.md.
"""

from __future__ import annotations

from axl import defer_optional_imports

from .cli import main as _cli_main


def main() -> None:
    """The console script ``axl``: py-libp2p's optional parts are imported when first used
    (``defer_optional_imports``), then the command line runs."""
    defer_optional_imports()
    _cli_main()


if __name__ == "__main__":
    main()

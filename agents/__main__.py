"""``python -m agents`` is the ``axl`` command: ``python -m agents module:Class ...`` runs one
agent class (same as ``axl agent module:Class ...``); see ``axl --help`` and docs/volunteer.md.
"""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()

"""``python -m agents.sim simulate|sweep ...`` (the same commands as ``axl swarm``)."""

from ._cli import app

if __name__ == "__main__":
    app()

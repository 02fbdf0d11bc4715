"""The one exception hierarchy of the ``compute`` package (rooted in :class:`axl.AxlError`)."""

from __future__ import annotations

from axl import AxlError


class ComputeError(AxlError):
    """Base class of every error raised by ``compute``."""


class InvalidTaskSpec(ComputeError, ValueError):
    """A task spec failed validation; the message names the field. Fix the spec and resubmit."""


class TraceError(ComputeError):
    """A trace, checkpoint or state does not match what was asked (wrong step, bad index)."""


class MerkleError(ComputeError):
    """A Merkle tree was built or queried wrongly (empty tree, index out of range)."""


class GameError(ComputeError):
    """A Verde game message does not fit the game (unknown game, wrong phase, finished game)."""


class InvalidDataset(ComputeError, ValueError):
    """A dataset blob is not a safe tensor file, or does not fit its task (format, keys, dtypes,
    shapes, value ranges, size limits). The message says which."""

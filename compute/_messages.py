"""Messages of the Verde refereed-delegation game (tags ``verde.*``).

Queries go from the referee to one party (``to``); replies come back from one party
(``party``). Parties are the two sides of a game, ``"a"`` and ``"b"``; the agents layer maps
them to peers. Hashes are raw 32-byte values; tensors travel as :class:`TensorBlob`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from axl import Message

from ._hashing import dtype_from_name, dtype_name, tensor_bytes

Side = Literal["a", "b"]
Outcome = Literal["decided", "no_dispute", "both_lost"]
Tree = Literal["checkpoints", "ops"]
Hash = Annotated[bytes, Field(min_length=32, max_length=32)]


class TensorBlob(BaseModel):
    """A tensor on the wire: dtype name, shape and little-endian raw bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dtype: Literal["float32", "float64", "int64", "int32", "bool"]
    shape: tuple[Annotated[int, Field(ge=0)], ...]
    data: bytes

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorBlob:
        return cls(dtype=dtype_name(t.dtype), shape=tuple(t.shape), data=tensor_bytes(t))

    def tensor(self) -> torch.Tensor:
        """Decode; raises ValueError when the byte length does not match dtype and shape."""
        dtype = dtype_from_name(self.dtype)
        n = 1
        for s in self.shape:
            n *= s
        if len(self.data) != n * torch.empty((), dtype=dtype).element_size():
            raise ValueError("tensor blob length does not match its dtype and shape")
        if n == 0:
            return torch.empty(self.shape, dtype=dtype)
        return torch.frombuffer(bytearray(self.data), dtype=dtype).reshape(self.shape).clone()


class Opening(BaseModel):
    """An op-trace leaf opened by a party: its position, value and Merkle siblings."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    index: int = Field(ge=0)
    value: Hash
    proof: list[Hash]


class ChallengeOpened(Message, tag="verde.challenge_opened"):
    """Two parties committed different trace roots for the same task: start a game."""

    game_id: str
    task_id: str
    root_a: Hash
    root_b: Hash


class BisectionQuery(Message, tag="verde.bisection_query"):
    """Reveal the two children of node (level, index) of your checkpoint or op tree."""

    game_id: str
    to: Side
    tree: Tree
    level: int = Field(ge=1)
    index: int = Field(ge=0)


class BisectionReply(Message, tag="verde.bisection_reply"):
    """The children of the queried node; they must hash to the node the party committed."""

    game_id: str
    party: Side
    left: Hash
    right: Hash


class LeafQuery(Message, tag="verde.leaf_query"):
    """Open checkpoint leaf ``index`` and its left neighbour inside the agreed subtree."""

    game_id: str
    to: Side
    index: int = Field(ge=0)


class LeafReply(Message, tag="verde.leaf_reply"):
    """The state hash at the leaf; ``prev`` opens leaf index-1 (absent for leaf 0)."""

    game_id: str
    party: Side
    state_hash: Hash
    prev: Opening | None = None


class IntervalQuery(Message, tag="verde.interval_query"):
    """List the state hash after every step of checkpoint interval ``checkpoint``."""

    game_id: str
    to: Side
    checkpoint: int = Field(ge=1)


class IntervalReply(Message, tag="verde.interval_reply"):
    """State hashes after each step of the interval; the last is the checkpoint's."""

    game_id: str
    party: Side
    step_hashes: list[Hash]


class StepQuery(Message, tag="verde.step_query"):
    """Commit the op trace of ``step`` (run from the agreed state before it)."""

    game_id: str
    to: Side
    step: int = Field(ge=1)


class StepReply(Message, tag="verde.step_reply"):
    """Root of the op tree of the step, and the opening of its last leaf (the new state)."""

    game_id: str
    party: Side
    op_root: Hash
    post_state: Opening


class OpQuery(Message, tag="verde.op_query"):
    """Open op ``op_index``: its output hash and the inputs the referee needs to recompute."""

    game_id: str
    to: Side
    op_index: int = Field(ge=0)


class OpReply(Message, tag="verde.op_reply"):
    """Output hash of the op plus openings (and tensors) of its inputs.

    For a ``load`` op, ``state_hashes`` lists the (name, tensor hash) pairs of the agreed
    state before the step; for the final leaf (the new state) ``inputs`` opens the state
    outputs without tensors.
    """

    game_id: str
    party: Side
    output: Hash
    inputs: list[Opening] = []
    tensors: list[TensorBlob] = []
    state_hashes: list[tuple[str, Hash]] = []


class Deadline(Message, tag="verde.deadline"):
    """The reply window closed: every party still owing a reply loses."""

    game_id: str


class Verdict(Message, tag="verde.verdict"):
    """The outcome: ``decided`` (one loser, one ``winner``), ``both_lost`` (no winner) or
    ``no_dispute`` (the committed roots are equal: no winner and no loser; nobody may be
    slashed for it)."""

    game_id: str
    outcome: Outcome = "decided"
    winner: Side | None
    losers: list[Side]
    reason: str
    rounds: int
    checkpoint: int | None = None
    step: int | None = None
    op_index: int | None = None
    op: str | None = None
    referee_ops: int = 0

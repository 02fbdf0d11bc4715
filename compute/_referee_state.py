"""The Verde referee's game state (:class:`RefereeState`) and the moves every phase of the
game shares: asking both parties, ending the game with a :class:`Verdict`, and checking an
opening against a subtree both parties agreed on. The game itself is :mod:`._referee`'s."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from axl import Message

from ._dataset_program import Dataset
from ._merkle import ZERO, leaf_hash, process_proof
from ._messages import Opening, Outcome, Side, Tree, Verdict
from ._spec import TaskSpec

SIDES: tuple[Side, Side] = ("a", "b")
_MAX_INDEX = 2**64  # no tree here has more leaves; larger indices are rejected before hashing


@dataclass(frozen=True)
class RefereeState:
    """Everything the referee knows about one game. Treat as immutable."""

    spec: TaskSpec
    game_id: str
    roots: tuple[bytes, bytes]
    dataset: Dataset | None = None  # the task's dataset, for a task that names one
    phase: str = "checkpoints"  # checkpoints | leaf | interval | step | ops | op | done
    expect: type[Message] | None = None
    pending: frozenset[Side] = frozenset()
    replies: tuple[tuple[Side, Message], ...] = ()
    rounds: int = 0
    # bisection
    tree: Tree = "checkpoints"
    level: int = 0
    index: int = 0
    node: tuple[bytes, bytes] = (ZERO, ZERO)
    agreed: tuple[tuple[int, int, bytes], ...] = ()  # (level, index, hash) of agreed subtrees
    # what has been pinned down so far
    checkpoint: int | None = None
    prev_hash: bytes | None = None
    claims: tuple[bytes, bytes] | None = None
    step: int | None = None
    op_index: int | None = None
    referee_ops: int = 0
    verdict: Verdict | None = field(default=None)

    @property
    def done(self) -> bool:
        return self.verdict is not None


def side_index(side: Side) -> int:
    return 0 if side == "a" else 1


def replace(s: RefereeState, **kw: object) -> RefereeState:
    return dataclasses.replace(s, **kw)  # type: ignore[arg-type]


Out = tuple[RefereeState, list[Message]]


def finish(s: RefereeState, losers: list[Side], reason: str, op: str | None = None) -> Out:
    losers = sorted(set(losers))
    winner: Side | None = None
    outcome: Outcome = "no_dispute" if not losers else "both_lost"
    if len(losers) == 1:
        winner = "b" if losers[0] == "a" else "a"
        outcome = "decided"
    verdict = Verdict(
        game_id=s.game_id,
        outcome=outcome,
        winner=winner,
        losers=losers,
        reason=reason,
        rounds=s.rounds,
        checkpoint=s.checkpoint,
        step=s.step,
        op_index=s.op_index,
        op=op,
        referee_ops=s.referee_ops,
    )
    return replace(s, phase="done", verdict=verdict, pending=frozenset(), expect=None), [verdict]


def ask(s: RefereeState, phase: str, expect: type[Message], queries: list[Message]) -> Out:
    return (
        replace(
            s,
            phase=phase,
            expect=expect,
            pending=frozenset(SIDES),
            replies=(),
            rounds=s.rounds + 1,
        ),
        queries,
    )


def in_agreed(s: RefereeState, op: Opening) -> bool:
    """``op`` opens a leaf inside one of the subtrees both parties agreed on."""
    if not 0 <= op.index < _MAX_INDEX:
        return False
    for level, index, h in s.agreed:
        if op.index >> level == index:
            return (
                len(op.proof) == level
                and process_proof(leaf_hash(op.index, op.value), op.proof) == h
            )
    return False

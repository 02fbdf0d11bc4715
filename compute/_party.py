"""Parties of the Verde game (honest and cheating) and a driver that plays a whole game.

A :class:`Party` answers the referee's queries from its own run of the task. With a
:class:`Cheat` it runs the task with that cheat injected and defends the result as well as a
consistent liar can (it commits op traces that match its own execution). Parties and
:func:`play` do no IO: agents put the same messages on the bus.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from axl import Message

from ._dataset_program import Dataset
from ._dataset_program import X as DATA_X
from ._dataset_program import Y as DATA_Y
from ._errors import GameError, MerkleError, TraceError
from ._hashing import state_hash, tensor_hash
from ._merkle import MerkleTree
from ._messages import (
    BisectionQuery,
    BisectionReply,
    ChallengeOpened,
    Deadline,
    IntervalQuery,
    IntervalReply,
    LeafQuery,
    LeafReply,
    Opening,
    OpQuery,
    OpReply,
    Side,
    StepQuery,
    StepReply,
    TensorBlob,
    Verdict,
)
from ._program import Program, build_program
from ._referee import handle, open_game
from ._referee_state import RefereeState
from ._spec import TaskSpec
from ._train import State, Tamper, TrainResult, op_hashes, run_step, state_at, train

CheatKind = Literal[
    "perturb_weights",  # one parameter's update output is perturbed at `step`
    "skip_step",  # the state after `step` is the state before it (only the counter moves)
    "wrong_op",  # the output of op `op` (mod program length) at `step` is perturbed
    "wrong_opt_state",  # an optimiser-state update is perturbed (weights if there is none)
    "wrong_final",  # honest run, but a made-up final checkpoint hash is committed
    "garbage",  # commits a perturbed run and answers queries with random bytes
    "silent",  # commits a perturbed run and stops answering after `op` queries
]

_DELTA = 2.0**-6


def _perturb(v: Tensor) -> Tensor:
    if v.dtype == torch.bool:
        return ~v
    if v.dtype.is_floating_point:
        return v + _DELTA
    if v.dim() == 0:
        return v + 1
    return v.reshape(-1).roll(1).reshape(v.shape)  # keeps ids (labels, tokens) in range


@dataclass(frozen=True)
class Cheat:
    """A deviation injected into a party's run (see :data:`CheatKind`)."""

    kind: CheatKind
    step: int = 1
    op: int = 0
    param: int = 0

    def tamper(self, spec: TaskSpec) -> Tamper | None:
        """The op-output hook that realises this cheat (None for ``wrong_final``)."""
        prog = build_program(spec)
        if self.kind == "wrong_final":
            return None
        params = sorted(n for n in prog.outputs if n.startswith("p."))
        opt = sorted(n for n in prog.outputs if n.startswith("opt."))
        if self.kind == "skip_step":
            return _skip_tamper(prog, self.step)
        if self.kind == "wrong_op":
            target = self.op % len(prog)
        elif self.kind == "wrong_opt_state" and opt:
            target = prog.outputs[opt[self.param % len(opt)]]
        else:
            target = prog.outputs[params[self.param % len(params)]]
        step = self.step

        def tamper(t: int, i: int, v: Tensor) -> Tensor:
            return _perturb(v) if t == step and i == target else v

        return tamper


def _skip_tamper(prog: Program, step: int) -> Tamper:
    loads = {i: name for i, name in prog.load_index.items()}
    outs = {i: name for name, i in prog.outputs.items() if name != "step"}
    seen: dict[str, Tensor] = {}

    def tamper(t: int, i: int, v: Tensor) -> Tensor:
        if t != step:
            return v
        if i in loads:
            seen[loads[i]] = v
        if i in outs:
            return seen[outs[i]]
        return v

    return tamper


def _agreed_proof(tree: MerkleTree, x: int, p: int) -> list[bytes]:
    """Proof of leaf ``x`` up to the agreed subtree left of position ``p`` (x < p)."""
    return tree.proof(x)[: (x ^ p).bit_length() - 1]


@dataclass
class _StepTrace:
    step: int
    before: State
    values: list[Tensor]
    leaves: list[bytes]
    tree: MerkleTree


class Party:
    """One side of a game, answering queries from its own (possibly cheating) run."""

    def __init__(
        self,
        side: Side,
        spec: TaskSpec,
        *,
        cheat: Cheat | None = None,
        result: TrainResult | None = None,
        dataset: Dataset | None = None,
    ) -> None:
        self.side, self.spec, self.cheat = side, spec, cheat
        self.prog = build_program(spec)
        self._tamper = cheat.tamper(spec) if cheat is not None else None
        self.result = (
            result if result is not None else train(spec, tamper=self._tamper, dataset=dataset)
        )
        hashes = list(self.result.hashes)
        if cheat is not None and cheat.kind == "wrong_final":
            hashes[-1] = hashlib.sha256(b"made-up result" + hashes[-1]).digest()
        self.hashes = hashes
        self.tree = MerkleTree(hashes)
        self._trace: _StepTrace | None = None
        self._answered = 0

    @property
    def root(self) -> bytes:
        """The trace root this party commits."""
        return self.tree.root

    # --- helpers -------------------------------------------------------------------------

    def _state(self, step: int) -> State:
        return state_at(self.result, step, tamper=self._tamper)

    def _step_trace(self, step: int) -> _StepTrace:
        if self._trace is None or self._trace.step != step:
            before = self._state(step - 1)
            run = run_step(self.prog, before, tamper=self._tamper, keep=True)
            assert run.values is not None
            leaves = op_hashes(self.prog, run)
            c = self.spec.checkpoint_interval
            if step % c == 0:  # a checkpoint: what it committed (differs for wrong_final)
                leaves[-1] = self.hashes[step // c]
            self._trace = _StepTrace(step, before, run.values, leaves, MerkleTree(leaves))
        return self._trace

    # --- the protocol --------------------------------------------------------------------

    def respond(self, query: Message) -> Message | None:
        """The reply to a query addressed to this party (None: stays silent).

        Raises :class:`GameError` for a query it cannot answer (another kind of message, or
        a position outside its trees or trace: only a faulty referee asks those)."""
        try:
            return self._respond(query)
        except (IndexError, MerkleError, TraceError) as exc:
            raise GameError(f"cannot answer {query.axl_tag}: {exc}") from exc

    def _respond(self, query: Message) -> Message | None:
        self._answered += 1
        if self.cheat is not None:
            if self.cheat.kind == "silent" and self._answered > self.cheat.op:
                return None
            if self.cheat.kind == "garbage":
                return self._garbage(query)
        gid = getattr(query, "game_id", "")
        if isinstance(query, BisectionQuery):
            if query.tree == "checkpoints":
                left, right = self.tree.children(query.level, query.index)
            else:
                if self._trace is None:
                    raise GameError("op bisection before a step query")
                left, right = self._trace.tree.children(query.level, query.index)
            return BisectionReply(game_id=gid, party=self.side, left=left, right=right)
        if isinstance(query, LeafQuery):
            j = query.index
            prev = None
            if j > 0:
                proof = _agreed_proof(self.tree, j - 1, j)
                prev = Opening(index=j - 1, value=self.hashes[j - 1], proof=proof)
            return LeafReply(game_id=gid, party=self.side, state_hash=self.hashes[j], prev=prev)
        if isinstance(query, IntervalQuery):
            c = self.spec.checkpoint_interval
            state = self._state((query.checkpoint - 1) * c)
            hashes = []
            for _ in range(c):
                state = run_step(self.prog, state, tamper=self._tamper).state
                hashes.append(state_hash(state))
            hashes[-1] = self.hashes[query.checkpoint]  # what it committed for the checkpoint
            return IntervalReply(game_id=gid, party=self.side, step_hashes=hashes)
        if isinstance(query, StepQuery):
            tr = self._step_trace(query.step)
            m = len(self.prog)
            post = Opening(index=m, value=tr.leaves[m], proof=tr.tree.proof(m))
            return StepReply(game_id=gid, party=self.side, op_root=tr.tree.root, post_state=post)
        if isinstance(query, OpQuery):
            return self._open_op(gid, query.op_index)
        raise GameError(f"a party cannot answer {query.axl_tag}")

    def _open_op(self, gid: str, p: int) -> OpReply:
        if self._trace is None:
            raise GameError("op query before a step query")
        tr = self._trace
        m = len(self.prog)

        def opening(x: int) -> Opening:
            return Opening(index=x, value=tr.leaves[x], proof=_agreed_proof(tr.tree, x, p))

        out = tr.leaves[p]
        if p == m:
            names = sorted(self.prog.outputs)
            ins = [opening(self.prog.outputs[n]) for n in names]
            return OpReply(game_id=gid, party=self.side, output=out, inputs=ins)
        node = self.prog.nodes[p]
        if node.prim == "load":
            pairs = [(n, tensor_hash(t)) for n, t in sorted(tr.before.items())]
            return OpReply(game_id=gid, party=self.side, output=out, state_hashes=pairs)
        return OpReply(
            game_id=gid,
            party=self.side,
            output=out,
            inputs=[opening(j) for j in node.inputs],
            tensors=[self._input_blob(j, tr.values[j]) for j in node.inputs],
        )

    def _input_blob(self, j: int, value: Tensor) -> TensorBlob:
        """An op input on the wire; a dataset tensor (``data.x``/``data.y``, up to 64 MiB:
        over a bus frame) travels without its bytes: the referee holds the dataset itself."""
        if self.prog.load_index.get(j) in (DATA_X, DATA_Y):
            return TensorBlob.of(value.new_empty((0,)))
        return TensorBlob.of(value)

    def _garbage(self, query: Message) -> Message:
        gid = getattr(query, "game_id", "")
        rnd = hashlib.sha256(f"{self._answered}".encode()).digest()
        if isinstance(query, BisectionQuery):
            return BisectionReply(game_id=gid, party=self.side, left=rnd, right=rnd[::-1])
        if isinstance(query, LeafQuery):
            return LeafReply(game_id=gid, party=self.side, state_hash=rnd)
        if isinstance(query, IntervalQuery):
            return IntervalReply(game_id=gid, party=self.side, step_hashes=[rnd])
        if isinstance(query, StepQuery):
            op = Opening(index=0, value=rnd, proof=[])
            return StepReply(game_id=gid, party=self.side, op_root=rnd, post_state=op)
        return OpReply(game_id=gid, party=self.side, output=rnd)


@dataclass
class GameRecord:
    """A finished game: the verdict, every message, and what it cost."""

    verdict: Verdict
    transcript: list[Message] = field(default_factory=list)
    bytes_exchanged: int = 0
    referee_seconds: float = 0.0
    referee_op_seconds: float = 0.0

    @property
    def rounds(self) -> int:
        return self.verdict.rounds


def play(
    spec: TaskSpec,
    a: Party,
    b: Party,
    *,
    game_id: str = "game",
    dataset: Dataset | None = None,
) -> GameRecord:
    """Run a whole game between ``a`` and ``b`` with a referee; every message is encoded and
    decoded on the way (so the transcript is exactly what would travel over the bus)."""
    if a.side != "a" or b.side != "b":
        raise GameError("play(spec, a, b) needs the party of side 'a' first, then side 'b'")
    opened = ChallengeOpened(game_id=game_id, task_id=spec.task_id, root_a=a.root, root_b=b.root)
    transcript: list[Message] = [opened]
    t0 = time.perf_counter()
    state, out = open_game(spec, opened, dataset=dataset)
    ref_time = time.perf_counter() - t0
    last_call = ref_time
    parties = {"a": a, "b": b}
    while not state.done:
        transcript.extend(out)
        replies: list[Message] = []
        for q in out:
            r = parties[q.to].respond(_wire(q))  # type: ignore[attr-defined]
            if r is not None:
                replies.append(_wire(r))
        transcript.extend(replies)
        out = []
        for r in replies:
            t0 = time.perf_counter()
            state, emitted = handle(state, r)
            last_call = time.perf_counter() - t0
            ref_time += last_call
            out.extend(emitted)
            if state.done:
                break
        if not state.done and not out:
            deadline = Deadline(game_id=game_id)
            transcript.append(deadline)
            state, out = handle(state, deadline)
    transcript.extend(out)
    assert state.verdict is not None
    size = sum(len(m.encode_payload()) for m in transcript)
    return GameRecord(state.verdict, transcript, size, ref_time, last_call)


def _wire(msg: Message) -> Message:
    return type(msg).decode_payload(msg.encode_payload())


__all__ = ["Cheat", "CheatKind", "GameRecord", "Party", "RefereeState", "play"]

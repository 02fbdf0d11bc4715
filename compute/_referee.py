"""The Verde referee: a pure state machine ``(state, message) -> (state, messages)``.

Game outline (docs/compute.md has the full protocol):

1. **Checkpoint bisection.** Both parties reveal the children of the node where their trees
   differ, level by level from the root: ``ceil(log2 n)`` rounds end at the leftmost checkpoint
   leaf ``j`` where they differ. Every left sibling passed on the way is *agreed*.
2. **Leaf opening.** Each party opens leaf ``j`` (its state hash) and leaf ``j-1`` inside the
   agreed subtree, so both start from the same state. Leaf 0 is settled by the referee
   computing the initial state itself.
3. **Interval** (only when the checkpoint interval c > 1): each party lists the state hash
   after every step of the interval; the first differing entry gives the disputed step.
4. **Op bisection.** Each party commits the op trace of that step (the hash of every op
   output in program order, then the new state hash) and the same descent finds the first
   differing op, whose inputs lie in agreed subtrees.
5. **One op.** Parties open the op's inputs; the referee checks them against the agreed
   subtrees, recomputes that single primitive (or, for a ``load`` op or the final state leaf,
   only hashes) and every party whose claimed output differs loses.

A party that answers with something that does not verify, or the wrong message, loses; a
:class:`Deadline` makes every party still owing a reply lose.

**Trust.** The referee takes the task spec, both roots and the parties' identities from its
caller, who must read them from a trusted source (the chain), never from one party's claim.
Nothing a party sends can make :func:`handle` raise: a reply for another game, from the
wrong party, out of turn, of the wrong type or with absurd values counts against its sender.

This module holds the game (its phases and the one-op recomputation); the state and the moves
every phase shares (asking, finishing, agreed-subtree checks) are :mod:`._referee_state`'s.
"""

from __future__ import annotations

from torch import Tensor

from axl import Message

from ._dataset_program import Dataset
from ._dataset_program import X as DATA_X
from ._dataset_program import Y as DATA_Y
from ._errors import GameError
from ._hashing import state_hash, state_hash_from, tensor_hash
from ._merkle import ZERO, depth_for, leaf_hash, parent_hash, process_proof
from ._messages import (
    BisectionQuery,
    BisectionReply,
    ChallengeOpened,
    Deadline,
    IntervalQuery,
    IntervalReply,
    LeafQuery,
    LeafReply,
    OpQuery,
    OpReply,
    Side,
    StepQuery,
    StepReply,
    Tree,
)
from ._prims import PRIMS
from ._program import build_program
from ._referee_state import (
    SIDES,
    Out,
    RefereeState,
    ask,
    finish,
    in_agreed,
    replace,
    side_index,
)
from ._spec import TaskSpec
from ._train import init_state


def open_game(spec: TaskSpec, opened: ChallengeOpened, *, dataset: Dataset | None = None) -> Out:
    """Start a game for ``opened``; raises :class:`GameError` if it names another task, or if
    the task trains on a dataset and ``dataset`` (its validated contents) is missing.

    The caller builds ``opened`` from what the chain says (the task's spec hash, the roots the
    two parties committed), not from a party's message. Equal roots end the game at once with
    ``Verdict.outcome == "no_dispute"`` (no winner, no loser): nobody may be slashed for it.
    """
    if opened.task_id != spec.task_id:
        raise GameError(f"challenge is for task {opened.task_id}, not {spec.task_id}")
    if spec.dataset is not None and dataset is None:
        raise GameError("the task trains on a dataset: fetch it and pass dataset=")
    s = RefereeState(
        spec=spec, game_id=opened.game_id, roots=(opened.root_a, opened.root_b), dataset=dataset
    )
    if opened.root_a == opened.root_b:
        return finish(s, [], "no dispute: the trace roots agree")
    return _descend_start(s, "checkpoints", spec.n_checkpoints, s.roots)


def _descend_start(s: RefereeState, tree: Tree, n: int, roots: tuple[bytes, bytes]) -> Out:
    s = replace(s, tree=tree, level=depth_for(n), index=0, node=roots, agreed=())
    return _query_children(s)


def _query_children(s: RefereeState) -> Out:
    qs: list[Message] = [
        BisectionQuery(game_id=s.game_id, to=side, tree=s.tree, level=s.level, index=s.index)
        for side in SIDES
    ]
    return ask(s, s.tree, BisectionReply, qs)


_REPLIES = (BisectionReply, LeafReply, IntervalReply, StepReply, OpReply)


def handle(s: RefereeState, msg: Message, *, sender: Side | None = None) -> Out:
    """Feed one message; returns the new state and the messages to send. Never raises.

    ``sender`` is the side the transport authenticated the message as coming from (None: the
    caller vouches for the ``party`` field, e.g. a local :func:`play`). A :class:`Deadline`
    from the caller (``sender`` None) for this game makes every party still owing a reply
    lose. Any message from a party that is not exactly the reply the game waits for from
    it (another game's id, another party's name, a second reply, a query, a verdict, a
    deadline) makes that party lose. Messages after the verdict, and messages no party can be
    held responsible for, change nothing.
    """
    if s.done:
        return s, []
    claimed = getattr(msg, "party", None)
    side = sender if sender is not None else claimed
    if sender is None and isinstance(msg, Deadline):
        if msg.game_id != s.game_id:
            return s, []  # another game's timer
        return finish(s, sorted(s.pending), "timeout: no reply before the deadline")
    if side not in SIDES:
        return s, []  # not attributable to a party of this game
    who: Side = "a" if side == "a" else "b"
    if not isinstance(msg, _REPLIES):
        return finish(s, [who], f"party {who} sent {msg.axl_tag}, which is no reply")
    if msg.game_id != s.game_id:
        return finish(s, [who], f"party {who} replied for another game {msg.game_id!r}")
    if claimed != who:
        return finish(s, [who], f"party {who} sent a reply in the name of {claimed!r}")
    if who not in s.pending:
        return finish(s, [who], f"party {who} replied out of turn")
    if s.expect is None or not isinstance(msg, s.expect):
        return finish(s, [who], f"party {who} answered {msg.axl_tag} out of turn")
    s = replace(s, pending=s.pending - {who}, replies=(*s.replies, (who, msg)))
    if s.pending:
        return s, []
    got = dict(s.replies)
    replies = (got["a"], got["b"])
    if isinstance(replies[0], BisectionReply) and isinstance(replies[1], BisectionReply):
        return _on_bisection(s, replies[0], replies[1])
    if isinstance(replies[0], LeafReply) and isinstance(replies[1], LeafReply):
        return _on_leaf(s, replies[0], replies[1])
    if isinstance(replies[0], IntervalReply) and isinstance(replies[1], IntervalReply):
        return _on_interval(s, replies[0], replies[1])
    if isinstance(replies[0], StepReply) and isinstance(replies[1], StepReply):
        return _on_step(s, replies[0], replies[1])
    if isinstance(replies[0], OpReply) and isinstance(replies[1], OpReply):
        return _on_op(s, replies[0], replies[1])
    raise AssertionError("unreachable: both replies are of the expected type")  # pragma: no cover


def _on_bisection(s: RefereeState, ra: BisectionReply, rb: BisectionReply) -> Out:
    bad: list[Side] = [
        side
        for side, r in zip(SIDES, (ra, rb), strict=True)
        if parent_hash(r.left, r.right) != s.node[side_index(side)]
    ]
    if bad:
        return finish(s, bad, "bisection reply does not hash to the committed node")
    level = s.level - 1
    if ra.left != rb.left:
        s = replace(s, level=level, index=2 * s.index, node=(ra.left, rb.left))
    else:
        agreed = (*s.agreed, (level, 2 * s.index, ra.left))
        s = replace(s, level=level, index=2 * s.index + 1, node=(ra.right, rb.right), agreed=agreed)
    if level > 0:
        return _query_children(s)
    return _at_leaf(s)


def _padding_losers(s: RefereeState) -> list[Side]:
    return [side for side in SIDES if s.node[side_index(side)] != ZERO]


def _at_leaf(s: RefereeState) -> Out:
    pos = s.index
    if s.tree == "checkpoints":
        s = replace(s, checkpoint=pos)
        if pos >= s.spec.n_checkpoints:
            return finish(s, _padding_losers(s), "committed a leaf beyond the last checkpoint")
        qs: list[Message] = [LeafQuery(game_id=s.game_id, to=x, index=pos) for x in SIDES]
        return ask(s, "leaf", LeafReply, qs)
    s = replace(s, op_index=pos)
    if pos > len(build_program(s.spec)):
        return finish(s, _padding_losers(s), "committed an op leaf beyond the last op")
    qs = [OpQuery(game_id=s.game_id, to=x, op_index=pos) for x in SIDES]
    return ask(s, "op", OpReply, qs)


def _on_leaf(s: RefereeState, ra: LeafReply, rb: LeafReply) -> Out:
    j = s.index
    bad: list[Side] = []
    for side, r in zip(SIDES, (ra, rb), strict=True):
        ok = leaf_hash(j, r.state_hash) == s.node[side_index(side)]
        if j > 0:
            ok = ok and r.prev is not None and r.prev.index == j - 1 and in_agreed(s, r.prev)
        if not ok:
            bad.append(side)
    if bad:
        return finish(s, bad, "checkpoint opening does not match the commitment")
    if j == 0:
        s = replace(s, referee_ops=s.referee_ops + 1, step=0)
        truth = state_hash(init_state(s.spec, dataset=s.dataset))
        losers: list[Side] = [
            x for x, r in zip(SIDES, (ra, rb), strict=True) if r.state_hash != truth
        ]
        return finish(s, losers, "initial state recomputed by the referee", op="init")
    assert ra.prev is not None and rb.prev is not None
    if ra.prev.value != rb.prev.value:  # pragma: no cover - needs a hash collision
        return finish(s, ["a", "b"], "conflicting openings of an agreed subtree")
    s = replace(s, prev_hash=ra.prev.value, claims=(ra.state_hash, rb.state_hash))
    c = s.spec.checkpoint_interval
    if c == 1:
        return _ask_step(s, j)
    qs: list[Message] = [IntervalQuery(game_id=s.game_id, to=x, checkpoint=j) for x in SIDES]
    return ask(s, "interval", IntervalReply, qs)


def _ask_step(s: RefereeState, step: int) -> Out:
    s = replace(s, step=step)
    qs: list[Message] = [StepQuery(game_id=s.game_id, to=x, step=step) for x in SIDES]
    return ask(s, "step", StepReply, qs)


def _on_interval(s: RefereeState, ra: IntervalReply, rb: IntervalReply) -> Out:
    c = s.spec.checkpoint_interval
    assert s.claims is not None and s.checkpoint is not None and s.prev_hash is not None
    bad: list[Side] = [
        side
        for side, r in zip(SIDES, (ra, rb), strict=True)
        if len(r.step_hashes) != c or r.step_hashes[-1] != s.claims[side_index(side)]
    ]
    if bad:
        return finish(s, bad, "interval hashes do not end at the committed checkpoint")
    q = next(i for i in range(c) if ra.step_hashes[i] != rb.step_hashes[i])
    prev = s.prev_hash if q == 0 else ra.step_hashes[q - 1]
    j = s.checkpoint
    s = replace(s, prev_hash=prev, claims=(ra.step_hashes[q], rb.step_hashes[q]))
    return _ask_step(s, (j - 1) * c + q + 1)


def _on_step(s: RefereeState, ra: StepReply, rb: StepReply) -> Out:
    m = len(build_program(s.spec))
    assert s.claims is not None
    bad: list[Side] = []
    depth = depth_for(m + 1)
    for side, r in zip(SIDES, (ra, rb), strict=True):
        op = r.post_state
        # Index and proof length are checked before anything is hashed (a hostile index such
        # as 2**300 is no leaf position; a proof of the wrong length proves nothing).
        well_formed = (
            op.index == m and len(op.proof) == depth and op.value == s.claims[side_index(side)]
        )
        if not well_formed or process_proof(leaf_hash(m, op.value), op.proof) != r.op_root:
            bad.append(side)
    if bad:
        return finish(s, bad, "op trace does not end at the claimed state")
    if ra.op_root == rb.op_root:  # pragma: no cover - needs a hash collision
        return finish(s, ["a", "b"], "identical op traces for different states")
    return _descend_start(s, "ops", m + 1, (ra.op_root, rb.op_root))


def _on_op(s: RefereeState, ra: OpReply, rb: OpReply) -> Out:
    prog = build_program(s.spec)
    p = s.index
    m = len(prog)
    bad: list[Side] = [
        side
        for side, r in zip(SIDES, (ra, rb), strict=True)
        if leaf_hash(p, r.output) != s.node[side_index(side)]
    ]
    truth: bytes | None = None
    op_name = "state" if p == m else prog.nodes[p].prim
    for side, r in zip(SIDES, (ra, rb), strict=True):
        if side in bad:
            continue
        # One valid set of inputs settles the truth; the referee computes it only once.
        value = _truth_from(s, r, p)
        if value is None:
            bad.append(side)
            continue
        truth = value
        if op_name not in ("state", "load"):
            s = replace(s, referee_ops=s.referee_ops + 1)
        break
    if truth is None:
        return finish(s, bad, "no party could support its op output", op=op_name)
    losers = bad + [x for x, r in zip(SIDES, (ra, rb), strict=True) if r.output != truth]
    return finish(s, losers, f"referee recomputed op {p} ({op_name})", op=op_name)


def _truth_from(s: RefereeState, r: OpReply, p: int) -> bytes | None:
    """The correct output hash of op ``p`` from a party's supporting data, or None if invalid.

    The data is untrusted: whatever it makes fail (decoding, hashing, the primitive) counts
    against the party that sent it, never stops the referee."""
    try:
        return _recompute(s, r, p)
    except Exception:
        return None


def _dataset_input(s: RefereeState, loaded: str | None) -> Tensor | None:
    """The referee's own copy of a dataset tensor an op reads (``data.x``/``data.y``): parties
    send it without its bytes (it can be far over a bus frame); checked against the agreed
    opening like any input."""
    if s.dataset is None or loaded not in (DATA_X, DATA_Y):
        return None
    return s.dataset.x if loaded == DATA_X else s.dataset.y


def _recompute(s: RefereeState, r: OpReply, p: int) -> bytes | None:
    prog = build_program(s.spec)
    if p == len(prog):
        names = sorted(prog.outputs)
        if len(r.inputs) != len(names):
            return None
        for name, op in zip(names, r.inputs, strict=True):
            if op.index != prog.outputs[name] or not in_agreed(s, op):
                return None
        return state_hash_from({n: op.value for n, op in zip(names, r.inputs, strict=True)})
    node = prog.nodes[p]
    if node.prim == "load":
        hashes = dict(r.state_hashes)
        if state_hash_from(hashes) != s.prev_hash or len(hashes) != len(r.state_hashes):
            return None
        return hashes.get(str(node.attrs[0][1]))
    if len(r.inputs) != len(node.inputs) or len(r.tensors) != len(node.inputs):
        return None
    tensors = []
    for j, op, blob in zip(node.inputs, r.inputs, r.tensors, strict=True):
        own = _dataset_input(s, prog.load_index.get(j))
        t = own if own is not None else blob.tensor()
        if op.index != j or tensor_hash(t) != op.value or not in_agreed(s, op):
            return None
        tensors.append(t)
    return tensor_hash(PRIMS[node.prim](*tensors, **node.kwargs))

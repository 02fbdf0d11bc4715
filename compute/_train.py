"""Running a task: initial state, steps, checkpoints and the committed trace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ._dataset_program import Dataset
from ._dataset_program import X as DATA_X
from ._errors import InvalidDataset, TraceError
from ._hashing import state_hash, state_hash_from, tensor_hash
from ._merkle import MerkleTree
from ._prims import PRIMS, random_uniform
from ._program import Program, build_program
from ._spec import TaskSpec

State = dict[str, Tensor]
# tamper(step, node_index, value) -> value: lets a cheating party alter op outputs.
Tamper = Callable[[int, int, Tensor], Tensor]

_PARAM_STREAM = 0x40000000


def rng_key(seed: int) -> int:
    """The 32-bit data/initialisation key derived from a task seed."""
    return (seed ^ (seed >> 32)) & 0xFFFFFFFF


def init_state(spec: TaskSpec, *, dataset: Dataset | None = None) -> State:
    """The state at step 0: parameters drawn from the seed, zeroed optimiser state (and the
    dataset's tensors for a task that names one; raises :class:`InvalidDataset` without it)."""
    prog = build_program(spec)
    key = torch.tensor(rng_key(spec.seed), dtype=torch.int64)
    state: State = {}
    for i, e in enumerate(prog.state):
        kind = e.init[0]
        if kind == "step":
            t = torch.tensor(0, dtype=torch.int64)
        elif kind == "key":
            t = key.clone()
        elif kind == "zeros":
            t = torch.zeros(e.shape, dtype=e.dtype)
        elif kind == "ones":
            t = torch.ones(e.shape, dtype=e.dtype)
        elif kind == "dataset":
            t = _dataset_tensor(dataset, e.init[1], e.shape, e.dtype)
        else:  # ("uniform", bound)
            n = 1
            for s in e.shape:
                n *= s
            u = random_uniform(key, _PARAM_STREAM + i, n).view(e.shape)
            t = (u * 2.0 - 1.0) * float(e.init[1])
        state[e.name] = t
    return state


def _dataset_tensor(
    dataset: Dataset | None, name: str, shape: tuple[int, ...], dtype: torch.dtype
) -> Tensor:
    if dataset is None:
        raise InvalidDataset("this task trains on a dataset: pass dataset=load_dataset(...)")
    t = dataset.x if name == DATA_X else dataset.y
    if tuple(t.shape) != shape or t.dtype != dtype:
        raise InvalidDataset(
            f"{name} is {tuple(t.shape)} {t.dtype}; the task needs {shape} {dtype}"
        )
    return t


@dataclass
class StepRun:
    """The result of one step: the next state, the loss and (if kept) every op output."""

    state: State
    loss: float
    values: list[Tensor] | None


def run_step(
    prog: Program, state: State, *, tamper: Tamper | None = None, keep: bool = False
) -> StepRun:
    """Execute one step program on ``state`` (not modified); raises TraceError on a bad state."""
    try:
        step = int(state["step"])
    except KeyError:
        raise TraceError("state has no 'step' tensor") from None
    vals: list[Tensor] = []
    for i, node in enumerate(prog.nodes):
        if node.prim == "load":
            name = node.attrs[0][1]
            if name not in state:
                raise TraceError(f"state has no tensor {name!r}")
            v = state[name]
        else:
            v = PRIMS[node.prim](*[vals[j] for j in node.inputs], **node.kwargs)
        if tamper is not None:
            v = tamper(step + 1, i, v)
        vals.append(v)
    new_state = {name: vals[i] for name, i in prog.outputs.items()}
    return StepRun(new_state, float(vals[prog.loss]), vals if keep else None)


def op_hashes(prog: Program, run: StepRun) -> list[bytes]:
    """Leaves of the op trace of a kept step: each op output's hash, then the new state hash."""
    if run.values is None:
        raise TraceError("the step was run without keep=True")
    hashes = [tensor_hash(v) for v in run.values]
    post = state_hash_from({name: hashes[i] for name, i in prog.outputs.items()})
    return [*hashes, post]


@dataclass
class TrainResult:
    """A finished run: checkpoint states and hashes, the Merkle tree over them, the losses."""

    spec: TaskSpec
    checkpoints: list[State]  # state at steps 0, c, 2c, ..., steps
    hashes: list[bytes]
    tree: MerkleTree
    losses: list[float]

    @property
    def root(self) -> bytes:
        """The trace root a solver commits."""
        return self.tree.root

    @property
    def final_state(self) -> State:
        return self.checkpoints[-1]


def train(
    spec: TaskSpec, *, tamper: Tamper | None = None, dataset: Dataset | None = None
) -> TrainResult:
    """Train ``spec`` reproducibly, hashing the full state at every checkpoint (on ``dataset``
    when the spec names one; raises :class:`InvalidDataset` when it is missing or mismatched)."""
    prog = build_program(spec)
    state = init_state(spec, dataset=dataset)
    checkpoints, hashes, losses = [state], [state_hash(state)], []
    for t in range(1, spec.steps + 1):
        run = run_step(prog, state, tamper=tamper)
        state = run.state
        losses.append(run.loss)
        if t % spec.checkpoint_interval == 0:
            checkpoints.append(state)
            hashes.append(state_hash(state))
    return TrainResult(spec, checkpoints, hashes, MerkleTree(hashes), losses)


def state_at(result: TrainResult, step: int, *, tamper: Tamper | None = None) -> State:
    """Re-execute from the nearest checkpoint to get the state after ``step`` steps."""
    spec = result.spec
    if not 0 <= step <= spec.steps:
        raise TraceError(f"step {step} is outside 0..{spec.steps}")
    c = spec.checkpoint_interval
    state = result.checkpoints[step // c]
    prog = build_program(spec)
    for _ in range(step - (step // c) * c):
        state = run_step(prog, state, tamper=tamper).state
    return state

"""Running a task: initial state, steps, checkpoints and the committed trace."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import torch
from torch import Tensor

from ._dataset_program import Dataset
from ._dataset_program import X as DATA_X
from ._errors import InvalidDataset, TraceError
from ._hashing import state_hash, state_hash_from, tensor_hash
from ._merkle import MerkleTree
from ._prims import PRIMS
from ._prims_data import random_uniform
from ._program import Program, build_program
from ._spec import TaskSpec

State = dict[str, Tensor]
# tamper(step, node_index, value) -> value: lets a cheating party alter op outputs.
Tamper = Callable[[int, int, Tensor], Tensor]

_PARAM_STREAM = 0x40000000
CHECKPOINT_MEMORY = 2**28  # bytes of checkpoint states train() keeps by default (256 MiB)


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
    for i, (prim, inputs, kwargs) in enumerate(prog.steps):
        if prim == "load":
            name = kwargs["name"]
            if name not in state:
                raise TraceError(f"state has no tensor {name!r}")
            v = state[name]
        else:
            v = PRIMS[prim](*[vals[j] for j in inputs], **kwargs)
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


def state_bytes(state: State) -> int:
    """Bytes held by the tensors of a state."""
    return sum(t.numel() * t.element_size() for t in state.values())


def checkpoint_stride(n_checkpoints: int, state_size: int, memory: int) -> int:
    """Keep every ``k``-th checkpoint (and the last) so the kept states fit ``memory`` bytes."""
    if n_checkpoints * state_size <= memory:
        return 1
    kept = max(1, memory // max(1, state_size) - 1)  # one slot is the last checkpoint
    return max(1, math.ceil(n_checkpoints / kept))


class Checkpoints(Sequence[State]):
    """The checkpoint states of a run (steps ``0, c, 2c, …``) under a memory budget: every
    ``stride``-th one and the last are kept, the others are recomputed on access from the
    nearest kept one before them (the same steps, the same tamper hook, the same bits)."""

    def __init__(
        self, spec: TaskSpec, kept: dict[int, State], n: int, stride: int, tamper: Tamper | None
    ) -> None:
        self.spec, self.kept, self.n, self.stride, self.tamper = spec, kept, n, stride, tamper

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, i: int) -> State: ...
    @overload
    def __getitem__(self, i: slice) -> list[State]: ...
    def __getitem__(self, i: int | slice) -> State | list[State]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"checkpoint {i} is out of range ({self.n})")
        if i in self.kept:
            return self.kept[i]
        base = max(k for k in self.kept if k <= i)
        state = self.kept[base]
        prog = build_program(self.spec)
        for _ in range((i - base) * self.spec.checkpoint_interval):
            state = run_step(prog, state, tamper=self.tamper).state
        return state

    def __iter__(self) -> Iterator[State]:
        return (self[i] for i in range(self.n))


@dataclass
class TrainResult:
    """A finished run: checkpoint states and hashes, the Merkle tree over them, the losses."""

    spec: TaskSpec
    checkpoints: Sequence[State]  # state at steps 0, c, 2c, ..., steps (some recomputed)
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
    spec: TaskSpec,
    *,
    tamper: Tamper | None = None,
    dataset: Dataset | None = None,
    memory: int = CHECKPOINT_MEMORY,
) -> TrainResult:
    """Train ``spec`` reproducibly, hashing the full state at every checkpoint (on ``dataset``
    when the spec names one; raises :class:`InvalidDataset` when it is missing or mismatched).

    Checkpoint states are kept in memory up to ``memory`` bytes (every k-th one and the last;
    the others are recomputed when asked for): a 10**6-step job never holds 10**6 states."""
    prog = build_program(spec)
    state = init_state(spec, dataset=dataset)
    n = spec.n_checkpoints
    stride = checkpoint_stride(n, state_bytes(state), memory)
    kept, hashes, losses = {0: state}, [state_hash(state)], []
    for t in range(1, spec.steps + 1):
        run = run_step(prog, state, tamper=tamper)
        state = run.state
        losses.append(run.loss)
        if t % spec.checkpoint_interval == 0:
            i = t // spec.checkpoint_interval
            if i % stride == 0 or i == n - 1:
                kept[i] = state
            hashes.append(state_hash(state))
    checkpoints = Checkpoints(spec, kept, n, stride, tamper)
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

"""The resource budget of a task: what one spec may cost, checked before any compute.

Units are float32-equivalent elements (4 bytes; an int64 counts as two). For a spec the
model below gives upper bounds of

* ``params``: parameter elements,
* ``state``: state elements (parameters, optimiser slots, step, rng key, Adam's powers),
* ``step``: elements of all op outputs of one step program (what running, building or
  refereeing one step holds at once; primitives' temporaries add at most a few times the
  largest single op on top),

and :func:`check_budget` enforces

* ``params <= MAX_PARAMS`` (2**24: 64 MiB of weights),
* ``step <= MAX_STEP`` (2**26: 256 MiB of op outputs, about 1 GiB peak per step),
* ``steps * state <= MAX_STATE_WORK`` (2**40: the state written over the job, 4 TiB),
* ``steps * step <= MAX_STEP_WORK`` (2**42: the work of the job).

Checkpoints are not bounded here: ``train`` keeps those that fit its memory budget and
recomputes the others from the nearest kept one (see :mod:`compute._train`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Protocol

from ._spec_parts import SGD, Adam, CNNModel, MLPModel, TransformerModel

MAX_PARAMS = 2**24
MAX_STEP = 2**26
MAX_STATE_WORK = 2**40
MAX_STEP_WORK = 2**42


@dataclass(frozen=True)
class Cost:
    """Upper bounds (float32-equivalent elements) of one spec's sizes."""

    params: int
    state: int
    step: int


class Budgeted(Protocol):
    """What the cost model reads of a spec (a :class:`compute.TaskSpec` is one)."""

    @property
    def model(self) -> MLPModel | CNNModel | TransformerModel: ...

    @property
    def optimizer(self) -> SGD | Adam: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def steps(self) -> int: ...


def _linear(fin: int, fout: int) -> int:
    return fout * fin + fout


def cost(spec: Budgeted) -> Cost:
    """The cost model of ``spec`` (upper bounds; tested against built programs)."""
    m, n = spec.model, spec.batch_size
    if isinstance(m, MLPModel):
        dims = [m.in_dim, *m.hidden, m.classes]
        params = sum(_linear(a, b) for a, b in itertools.pairwise(dims))
        # data, per layer: forward (linear, relu), backward (dx, relu_grad), loss terms
        acts = n * (dims[0] + 2 * 1 + 2 * dims[-1]) + sum(4 * n * d for d in dims)
    elif isinstance(m, CNNModel):
        s, c0, (c1, c2), k = m.image_size, m.in_channels, m.channels, m.classes
        r1, r2, flat = n * s * s, n * (s // 2) ** 2, c2 * (s // 4) ** 2
        params = _linear(c0 * 9, c1) + _linear(c1 * 9, c2) + _linear(flat, k)
        acts = (
            n * (c0 * s * s + 2)
            + 2 * r1 * c0 * 9  # im2col (and slack)
            + 7 * r1 * c1  # conv1 out, nchw, relu, pool-grad, relu-grad, rows, col2im
            + 2 * r2 * c1 * 9  # im2col, dx of conv2
            + 7 * r2 * c2
            + 4 * n * flat
            + 4 * n * k
        )
    else:
        t, d, v, f, h = m.seq_len, m.d_model, m.vocab, m.d_ff, m.heads
        rows = n * t
        block = _linear(d, 3 * d) + _linear(d, d) + _linear(d, f) + _linear(f, d) + 4 * d
        params = v * d + t * d + m.layers * block + 2 * d + _linear(d, v)
        acts = (
            8 * rows  # int64 token ids and targets
            + rows * (3 * v + 6 * d)  # one-hot, embedding, logits, ce grad, final norm
            + m.layers * (rows * (36 * d + 4 * f) + 4 * n * h * t * t)
        )
    slots = 2 if not isinstance(spec.optimizer, SGD) else int(spec.optimizer.momentum > 0)
    state = params * (1 + slots) + 8
    # loads (the state), gradients, optimiser outputs (at most three per parameter)
    step = acts + state + params + 3 * params + 8
    return Cost(params=params, state=state, step=step)


def budget_error(spec: Budgeted) -> str | None:
    """Why ``spec`` exceeds the budget (None: within it)."""
    c = cost(spec)
    if c.params > MAX_PARAMS:
        return f"the model has {c.params} parameters (at most {MAX_PARAMS})"
    if c.step > MAX_STEP:
        return f"one step needs {c.step} elements of op outputs (at most {MAX_STEP})"
    if spec.steps * c.state > MAX_STATE_WORK:
        return (
            f"steps x state = {spec.steps} x {c.state} elements exceeds {MAX_STATE_WORK}; "
            "use fewer steps or a smaller model"
        )
    if spec.steps * c.step > MAX_STEP_WORK:
        return f"steps x step size = {spec.steps} x {c.step} exceeds {MAX_STEP_WORK}"
    return None

"""Dataset-backed steps: a task that names a dataset reads its batches from two state tensors.

With ``spec.dataset`` set, the step program loads ``data.x`` and ``data.y`` (the whole dataset,
constant state carried through every step, so the step-0 state hash and every checkpoint
commit to the data) and selects the batch at ``step`` with ``ds_batch``: rows
``(step * batch + i) mod rows`` for ``i < batch``, an exact gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._prims import _prim
from ._spec import TaskSpec
from ._spec_parts import CNNModel, MLPModel, TransformerModel

X, Y = "data.x", "data.y"


@dataclass(frozen=True)
class Dataset:
    """A validated dataset: inputs ``x`` (rows first) and integer targets ``y``."""

    x: Tensor
    y: Tensor

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])


def dataset_layout(
    spec: TaskSpec, rows: int
) -> tuple[tuple[int, ...], torch.dtype, tuple[int, ...], int]:
    """(x shape, x dtype, y shape, label bound) of a dataset of ``rows`` samples for ``spec``;
    inputs of a transformer are token ids below the bound, targets always are."""
    m = spec.model
    if isinstance(m, MLPModel):
        return (rows, m.in_dim), torch.float32, (rows,), m.classes
    if isinstance(m, CNNModel):
        return (rows, m.in_channels, m.image_size, m.image_size), torch.float32, (rows,), m.classes
    assert isinstance(m, TransformerModel)
    return (rows, m.seq_len), torch.int64, (rows, m.seq_len), m.vocab


@_prim("ds_batch")
def ds_batch(step: Tensor, data: Tensor, *, batch: int, flatten: bool) -> Tensor:
    """Rows ``(step * batch + i) mod rows`` of ``data`` (flattened for sequence targets)."""
    rows = data.shape[0]
    idx = (torch.arange(batch, dtype=torch.int64) + int(step) * batch) % rows
    out = data.index_select(0, idx)
    return out.reshape(-1) if flatten else out

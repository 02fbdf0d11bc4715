"""Typed, hash-addressed task specs.

A :class:`TaskSpec` says everything a solver needs to train a model bit-identically: the
architecture (one of a small registry), the generated data set, the optimiser and its
hyper-parameters, the number of steps, the batch size, the seed and the checkpoint interval.
Its id is the SHA-256 of a canonical JSON encoding, so two parties that agree on the id agree
on the work.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from ._budget import budget_error
from ._errors import InvalidTaskSpec
from ._spec_parts import (
    FROZEN,
    SGD,
    CNNModel,
    DatasetRef,
    DataSpec,
    Int,
    MLPModel,
    ModelSpec,
    OptimizerSpec,
    TransformerModel,
)

MAX_DATASET_ELEMENTS = 1 << 24  # 64 MiB of float32: the dataset is carried in the state


class TaskSpec(BaseModel):
    """A training task. Validate untrusted input with :meth:`parse` (raises InvalidTaskSpec)."""

    model_config = FROZEN
    version: Annotated[Int, Field(ge=1, le=1)] = 1  # strict: `true` is no version
    model: ModelSpec = Field(default_factory=MLPModel)
    data: DataSpec = Field(default_factory=DataSpec)
    optimizer: OptimizerSpec = Field(default_factory=SGD)
    steps: Annotated[Int, Field(ge=1, le=1_000_000)] = 16
    batch_size: Annotated[Int, Field(ge=1, le=1024)] = 8
    seed: Annotated[Int, Field(ge=0, lt=2**63)] = 0
    checkpoint_interval: Annotated[Int, Field(ge=1, le=1_000_000)] = 1
    dataset: DatasetRef | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        if self.steps % self.checkpoint_interval:
            raise ValueError(
                f"checkpoint_interval ({self.checkpoint_interval}) must divide steps ({self.steps})"
            )
        wants = "shift" if isinstance(self.model, TransformerModel) else "clusters"
        if self.data.kind != wants:
            raise ValueError(f"a {self.model.kind} model needs data.kind={wants!r}")
        rows = self.batch_size * (
            self.model.seq_len if isinstance(self.model, TransformerModel) else 1
        )
        if isinstance(self.model, CNNModel):
            rows *= self.model.image_size**2
        if rows > 65536:
            raise ValueError(f"batch is too large ({rows} rows per matmul; at most 65536)")
        if self.dataset is not None:
            m = self.model
            per_row = (
                m.in_dim + 1
                if isinstance(m, MLPModel)
                else m.seq_len * 2
                if isinstance(m, TransformerModel)
                else m.in_channels * m.image_size**2 + 1
            )
            if self.dataset.rows * per_row > MAX_DATASET_ELEMENTS:
                raise ValueError(
                    f"the dataset is too large ({self.dataset.rows * per_row} values; "
                    f"at most {MAX_DATASET_ELEMENTS})"
                )
        over = budget_error(self)
        if over is not None:
            raise ValueError(f"over the resource budget: {over}")
        return self

    @classmethod
    def parse(cls, data: Any) -> TaskSpec:
        """Validate a dict (or JSON string/bytes); raises :class:`InvalidTaskSpec` with the path."""
        try:
            if isinstance(data, (str, bytes)):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"]) or "<root>"
            more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise InvalidTaskSpec(f"task spec field {path}: {first['msg']}{more}") from exc

    def canonical_bytes(self) -> bytes:
        """Canonical encoding: JSON with sorted keys, no whitespace, shortest float repr (a spec
        without a dataset omits the field, so its id is what it was before datasets existed)."""
        data = self.model_dump(mode="json", exclude={"dataset"} if self.dataset is None else None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    @property
    def task_id(self) -> str:
        """Hex SHA-256 of :meth:`canonical_bytes`: the task's address."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    @property
    def n_checkpoints(self) -> int:
        """Number of committed checkpoints: step 0, every interval, and the last step."""
        return self.steps // self.checkpoint_interval + 1

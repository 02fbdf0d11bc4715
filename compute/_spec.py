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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from ._budget import budget_error
from ._errors import InvalidTaskSpec

MAX_DATASET_ELEMENTS = 1 << 24  # 64 MiB of float32: the dataset is carried in the state
_FROZEN = ConfigDict(frozen=True, extra="forbid")
# Numbers are strict: ``True`` or ``"16"`` is no int, ``"0.1"`` no float (an int is a float).
_Int = Annotated[int, Strict()]
_Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
_Dim = Annotated[_Int, Field(ge=1, le=1024)]


class MLPModel(BaseModel):
    """A multi-layer perceptron with ReLU activations: ``in_dim -> hidden... -> classes``."""

    model_config = _FROZEN
    kind: Literal["mlp"] = "mlp"
    in_dim: _Dim = 16
    hidden: tuple[_Dim, ...] = Field(default=(32,), max_length=6)
    classes: Annotated[_Int, Field(ge=2, le=256)] = 4


class CNNModel(BaseModel):
    """Two 3x3 conv layers (padding 1) with ReLU and 2x2 average pooling, then a linear head."""

    model_config = _FROZEN
    kind: Literal["cnn"] = "cnn"
    image_size: Annotated[_Int, Field(ge=4, le=32, multiple_of=4)] = 8
    in_channels: Annotated[_Int, Field(ge=1, le=8)] = 1
    channels: tuple[_Dim, _Dim] = (4, 8)
    classes: Annotated[_Int, Field(ge=2, le=256)] = 4


class TransformerModel(BaseModel):
    """A tiny causal transformer (pre-layernorm blocks, ReLU MLP) over token sequences."""

    model_config = _FROZEN
    kind: Literal["transformer"] = "transformer"
    vocab: Annotated[_Int, Field(ge=2, le=512)] = 16
    seq_len: Annotated[_Int, Field(ge=2, le=128)] = 8
    d_model: Annotated[_Int, Field(ge=2, le=512)] = 16
    heads: Annotated[_Int, Field(ge=1, le=16)] = 2
    d_ff: _Dim = 32
    layers: Annotated[_Int, Field(ge=1, le=4)] = 1

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerModel:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        return self


ModelSpec = Annotated[MLPModel | CNNModel | TransformerModel, Field(discriminator="kind")]


class SGD(BaseModel):
    """Stochastic gradient descent with optional momentum and weight decay."""

    model_config = _FROZEN
    kind: Literal["sgd"] = "sgd"
    lr: Annotated[_Float, Field(gt=0, le=10)] = 0.1
    momentum: Annotated[_Float, Field(ge=0, lt=1)] = 0.0
    weight_decay: Annotated[_Float, Field(ge=0, le=1)] = 0.0


class Adam(BaseModel):
    """Adam with bias correction (no weight decay)."""

    model_config = _FROZEN
    kind: Literal["adam"] = "adam"
    lr: Annotated[_Float, Field(gt=0, le=1)] = 1e-3
    beta1: Annotated[_Float, Field(ge=0, lt=1)] = 0.9
    beta2: Annotated[_Float, Field(ge=0, lt=1)] = 0.999
    eps: Annotated[_Float, Field(gt=0, le=1)] = 1e-8


OptimizerSpec = Annotated[SGD | Adam, Field(discriminator="kind")]


class DataSpec(BaseModel):
    """Data generated from the task seed; nothing is downloaded.

    ``clusters`` (for MLP and CNN): each sample is a class centroid plus uniform noise of
    amplitude ``noise``. ``shift`` (for transformers): random token sequences whose target at
    position t is the token at t-1.
    """

    model_config = _FROZEN
    kind: Literal["clusters", "shift"] = "clusters"
    noise: Annotated[_Float, Field(ge=0, le=10)] = 0.5


class DatasetRef(BaseModel):
    """A dataset blob to train on instead of generated data (see :mod:`compute._dataset`).

    ``blob`` is the blob's id (``axl.BlobId`` text form: the hash binds its bytes and size),
    ``rows`` the number of samples it holds (the program's data shapes follow from it).
    """

    model_config = _FROZEN
    blob: Annotated[str, Field(pattern=r"^blob1-\d{1,2}-\d{1,14}-[0-9a-f]{64}$")]
    rows: Annotated[_Int, Field(ge=1, le=1 << 20)]


class TaskSpec(BaseModel):
    """A training task. Validate untrusted input with :meth:`parse` (raises InvalidTaskSpec)."""

    model_config = _FROZEN
    version: Annotated[_Int, Field(ge=1, le=1)] = 1  # strict: `true` is no version
    model: ModelSpec = Field(default_factory=MLPModel)
    data: DataSpec = Field(default_factory=DataSpec)
    optimizer: OptimizerSpec = Field(default_factory=SGD)
    steps: Annotated[_Int, Field(ge=1, le=1_000_000)] = 16
    batch_size: Annotated[_Int, Field(ge=1, le=1024)] = 8
    seed: Annotated[_Int, Field(ge=0, lt=2**63)] = 0
    checkpoint_interval: Annotated[_Int, Field(ge=1, le=1_000_000)] = 1
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

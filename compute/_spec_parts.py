"""The parts of a task spec: the model registry, the optimisers and the data (generated or a
dataset blob). :mod:`compute._spec` composes them into a :class:`TaskSpec`; the cost model
(:mod:`compute._budget`) reads them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

FROZEN = ConfigDict(frozen=True, extra="forbid")
# Numbers are strict: ``True`` or ``"16"`` is no int, ``"0.1"`` no float (an int is a float).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Dim = Annotated[Int, Field(ge=1, le=1024)]


class MLPModel(BaseModel):
    """A multi-layer perceptron with ReLU activations: ``in_dim -> hidden... -> classes``."""

    model_config = FROZEN
    kind: Literal["mlp"] = "mlp"
    in_dim: Dim = 16
    hidden: tuple[Dim, ...] = Field(default=(32,), max_length=6)
    classes: Annotated[Int, Field(ge=2, le=256)] = 4


class CNNModel(BaseModel):
    """Two 3x3 conv layers (padding 1) with ReLU and 2x2 average pooling, then a linear head."""

    model_config = FROZEN
    kind: Literal["cnn"] = "cnn"
    image_size: Annotated[Int, Field(ge=4, le=32, multiple_of=4)] = 8
    in_channels: Annotated[Int, Field(ge=1, le=8)] = 1
    channels: tuple[Dim, Dim] = (4, 8)
    classes: Annotated[Int, Field(ge=2, le=256)] = 4


class TransformerModel(BaseModel):
    """A tiny causal transformer (pre-layernorm blocks, ReLU MLP) over token sequences."""

    model_config = FROZEN
    kind: Literal["transformer"] = "transformer"
    vocab: Annotated[Int, Field(ge=2, le=512)] = 16
    seq_len: Annotated[Int, Field(ge=2, le=128)] = 8
    d_model: Annotated[Int, Field(ge=2, le=512)] = 16
    heads: Annotated[Int, Field(ge=1, le=16)] = 2
    d_ff: Dim = 32
    layers: Annotated[Int, Field(ge=1, le=4)] = 1

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerModel:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        return self


ModelSpec = Annotated[MLPModel | CNNModel | TransformerModel, Field(discriminator="kind")]


class SGD(BaseModel):
    """Stochastic gradient descent with optional momentum and weight decay."""

    model_config = FROZEN
    kind: Literal["sgd"] = "sgd"
    lr: Annotated[Float, Field(gt=0, le=10)] = 0.1
    momentum: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    weight_decay: Annotated[Float, Field(ge=0, le=1)] = 0.0


class Adam(BaseModel):
    """Adam with bias correction (no weight decay)."""

    model_config = FROZEN
    kind: Literal["adam"] = "adam"
    lr: Annotated[Float, Field(gt=0, le=1)] = 1e-3
    beta1: Annotated[Float, Field(ge=0, lt=1)] = 0.9
    beta2: Annotated[Float, Field(ge=0, lt=1)] = 0.999
    eps: Annotated[Float, Field(gt=0, le=1)] = 1e-8


OptimizerSpec = Annotated[SGD | Adam, Field(discriminator="kind")]


class DataSpec(BaseModel):
    """Data generated from the task seed; nothing is downloaded.

    ``clusters`` (for MLP and CNN): each sample is a class centroid plus uniform noise of
    amplitude ``noise``. ``shift`` (for transformers): random token sequences whose target at
    position t is the token at t-1.
    """

    model_config = FROZEN
    kind: Literal["clusters", "shift"] = "clusters"
    noise: Annotated[Float, Field(ge=0, le=10)] = 0.5


class DatasetRef(BaseModel):
    """A dataset blob to train on instead of generated data (see :mod:`compute._dataset`).

    ``blob`` is the blob's id (``axl.BlobId`` text form: the hash binds its bytes and size),
    ``rows`` the number of samples it holds (the program's data shapes follow from it).
    """

    model_config = FROZEN
    blob: Annotated[str, Field(pattern=r"^blob1-\d{1,2}-\d{1,14}-[0-9a-f]{64}$")]
    rows: Annotated[Int, Field(ge=1, le=1 << 20)]

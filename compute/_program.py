"""Step programs: one training step as a flat, fixed list of primitive operations.

A :class:`Program` is built once per task spec by running the model's forward pass, its
hand-written backward pass and the optimiser update once on an all-zero state. The
node order is the documented op order of a step that the Verde game bisects over:

1. ``load`` nodes read the state tensors in :attr:`Program.state_names` order (interleaved
   with the first uses, in the order the model declares them),
2. ``data_x`` / ``data_y`` generate the batch from (rng.key, step),
3. the forward pass and the loss, then the backward pass in reverse layer order,
4. the optimiser update, parameter by parameter, and the step increment.

The same program describes every step (hyper-parameters are attributes; the step number and
Adam's running powers live in the state), so a referee can find the op at any index cheaply.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ._dataset_program import X as DATA_X
from ._dataset_program import Y as DATA_Y
from ._dataset_program import dataset_layout
from ._prims import PRIMS
from ._spec import TaskSpec
from ._spec_parts import SGD, Adam, CNNModel, MLPModel, TransformerModel


@dataclass(frozen=True)
class Node:
    """One primitive application: ``prim(*[value of node i for i in inputs], **attrs)``."""

    prim: str
    inputs: tuple[int, ...]
    attrs: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.attrs)


@dataclass(frozen=True)
class StateEntry:
    """A state tensor: name, shape, dtype and how it is initialised."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    init: tuple[Any, ...]


@dataclass(frozen=True)
class Program:
    """The op list of one training step (see the module docstring for the order)."""

    nodes: tuple[Node, ...]
    state: tuple[StateEntry, ...]
    outputs: dict[str, int]  # state name -> node producing its next value
    loss: int
    load_index: dict[int, str] = field(default_factory=dict)  # node -> state name it loads
    grads: dict[str, int] = field(default_factory=dict)  # parameter name -> gradient node

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.state)

    @functools.cached_property
    def steps(self) -> tuple[tuple[str, tuple[int, ...], dict[str, Any]], ...]:
        """(prim, inputs, keyword attributes) per node, built once: the executor's loop."""
        return tuple((n.prim, n.inputs, n.kwargs) for n in self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


@dataclass(frozen=True)
class Ref:
    index: int
    value: Tensor


class Builder:
    """Records nodes while running them once on an all-zero state (for shapes and checks).

    (Meta tensors would avoid the arithmetic but cost ~1.7 s of torch start-up per process.)
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.state: list[StateEntry] = []
        self.loads: dict[int, str] = {}
        self.grads: dict[str, Ref] = {}
        self.params: list[tuple[str, Ref]] = []

    def load(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, init: tuple[Any, ...]
    ) -> Ref:
        self.state.append(StateEntry(name, shape, dtype, init))
        self.nodes.append(Node("load", (), (("name", name),)))
        self.loads[len(self.nodes) - 1] = name
        return Ref(len(self.nodes) - 1, torch.zeros(shape, dtype=dtype))

    def param(self, name: str, shape: tuple[int, ...], init: tuple[Any, ...]) -> Ref:
        ref = self.load("p." + name, shape, torch.float32, init)
        self.params.append((name, ref))
        return ref

    def op(self, prim: str, *inputs: Ref, **attrs: Any) -> Ref:
        value = PRIMS[prim](*[r.value for r in inputs], **attrs)
        self.nodes.append(Node(prim, tuple(r.index for r in inputs), tuple(sorted(attrs.items()))))
        return Ref(len(self.nodes) - 1, value)

    def grad(self, param: Ref, g: Ref) -> None:
        name = next(n for n, r in self.params if r.index == param.index)
        if name in self.grads:
            g = self.op("add", self.grads[name], g)
        self.grads[name] = g


# --- layers with hand-written backward --------------------------------------------------------


class _Linear:
    def __init__(self, b: Builder, name: str, fin: int, fout: int) -> None:
        self.w = b.param(name + ".w", (fout, fin), ("uniform", 1.0 / math.sqrt(fin)))
        self.bias = b.param(name + ".b", (fout,), ("zeros",))

    def fwd(self, b: Builder, x: Ref) -> Ref:
        self.x = x
        return b.op("linear", x, self.w, self.bias)

    def bwd(self, b: Builder, g: Ref, need_dx: bool = True) -> Ref | None:
        dx = b.op("matmul", g, self.w) if need_dx else None
        b.grad(self.w, b.op("matmul", g, self.x, ta=True))
        b.grad(self.bias, b.op("sum_rows", g))
        return dx


class _Relu:
    def fwd(self, b: Builder, x: Ref) -> Ref:
        self.x = x
        return b.op("relu", x)

    def bwd(self, b: Builder, g: Ref) -> Ref:
        return b.op("relu_grad", g, self.x)


class _LayerNorm:
    def __init__(self, b: Builder, name: str, d: int) -> None:
        self.gamma = b.param(name + ".g", (d,), ("ones",))
        self.beta = b.param(name + ".b", (d,), ("zeros",))

    def fwd(self, b: Builder, x: Ref) -> Ref:
        self.x = x
        return b.op("layernorm", x, self.gamma, self.beta)

    def bwd(self, b: Builder, g: Ref) -> Ref:
        dx = b.op("layernorm_grad_x", self.x, self.gamma, g)
        b.grad(self.gamma, b.op("layernorm_grad_gamma", self.x, g))
        b.grad(self.beta, b.op("sum_rows", g))
        return dx


def _build_mlp(b: Builder, m: MLPModel, x: Ref, y: Ref) -> Ref:
    dims = [m.in_dim, *m.hidden, m.classes]
    layers: list[_Linear | _Relu] = []
    for i in range(len(dims) - 1):
        layers.append(_Linear(b, f"l{i}", dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(_Relu())
    h = x
    for layer in layers:
        h = layer.fwd(b, h)
    loss = b.op("ce_loss", h, y)
    g: Ref | None = b.op("ce_grad", h, y)
    for j, layer in enumerate(reversed(layers)):
        assert g is not None
        if isinstance(layer, _Linear):
            g = layer.bwd(b, g, need_dx=j < len(layers) - 1)
        else:
            g = layer.bwd(b, g)
    return loss


def _build_cnn(b: Builder, m: CNNModel, x: Ref, y: Ref, batch: int) -> Ref:
    c0, (c1, c2), s = m.in_channels, m.channels, m.image_size
    conv1 = _Linear(b, "conv1", c0 * 9, c1)
    conv2 = _Linear(b, "conv2", c1 * 9, c2)
    flat = c2 * (s // 4) ** 2
    head = _Linear(b, "head", flat, m.classes)
    # forward
    h1 = b.op("rows_to_nchw", conv1.fwd(b, b.op("im2col", x)), batch=batch, size=s)
    r1 = b.op("relu", h1)
    p1 = b.op("avgpool2", r1)
    h2 = b.op("rows_to_nchw", conv2.fwd(b, b.op("im2col", p1)), batch=batch, size=s // 2)
    r2 = b.op("relu", h2)
    p2 = b.op("avgpool2", r2)
    logits = head.fwd(b, b.op("reshape", p2, shape=(batch, flat)))
    loss = b.op("ce_loss", logits, y)
    # backward
    g = head.bwd(b, b.op("ce_grad", logits, y))
    assert g is not None
    g = b.op("reshape", g, shape=(batch, c2, s // 4, s // 4))
    g = b.op("relu_grad", b.op("avgpool2_grad", g), h2)
    g2 = conv2.bwd(b, b.op("nchw_to_rows", g))
    assert g2 is not None
    g = b.op("col2im", g2, batch=batch, channels=c1, size=s // 2)
    g = b.op("relu_grad", b.op("avgpool2_grad", g), h1)
    conv1.bwd(b, b.op("nchw_to_rows", g), need_dx=False)
    return loss


class _Block:
    def __init__(self, b: Builder, i: int, m: TransformerModel, batch: int) -> None:
        d = m.d_model
        self.m, self.batch = m, batch
        self.ln1 = _LayerNorm(b, f"b{i}.ln1", d)
        self.qkv = _Linear(b, f"b{i}.qkv", d, 3 * d)
        self.proj = _Linear(b, f"b{i}.proj", d, d)
        self.ln2 = _LayerNorm(b, f"b{i}.ln2", d)
        self.fc1 = _Linear(b, f"b{i}.fc1", d, m.d_ff)
        self.act = _Relu()
        self.fc2 = _Linear(b, f"b{i}.fc2", m.d_ff, d)
        self.scale = 1.0 / math.sqrt(d // m.heads)

    def fwd(self, b: Builder, h: Ref) -> Ref:
        kw = {"batch": self.batch, "heads": self.m.heads}
        qkv = self.qkv.fwd(b, self.ln1.fwd(b, h))
        self.q, self.k, self.v = (b.op("split_heads", qkv, which=w, **kw) for w in range(3))
        self.p = b.op("causal_softmax", b.op("matmul", self.q, self.k, tb=True), scale=self.scale)
        o = b.op("merge_heads", b.op("matmul", self.p, self.v), **kw)
        h = b.op("add", h, self.proj.fwd(b, o))
        f = self.fc2.fwd(b, self.act.fwd(b, self.fc1.fwd(b, self.ln2.fwd(b, h))))
        return b.op("add", h, f)

    def bwd(self, b: Builder, g: Ref) -> Ref:
        kw = {"batch": self.batch, "heads": self.m.heads}
        gf = self.fc2.bwd(b, g)
        assert gf is not None
        gf = self.fc1.bwd(b, self.act.bwd(b, gf))
        assert gf is not None
        g = b.op("add", g, self.ln2.bwd(b, gf))
        go = self.proj.bwd(b, g)
        assert go is not None
        go = b.op("split_heads", b.op("join_qkv", go, go, go), which=0, **kw)
        gp = b.op("matmul", go, self.v, tb=True)
        gv = b.op("matmul", self.p, go, ta=True)
        gs = b.op("softmax_grad", self.p, gp, scale=self.scale)
        gq = b.op("matmul", gs, self.k)
        gk = b.op("matmul", gs, self.q, ta=True)
        gq, gk, gv = (b.op("merge_heads", t, **kw) for t in (gq, gk, gv))
        ga = self.qkv.bwd(b, b.op("join_qkv", gq, gk, gv))
        assert ga is not None
        return b.op("add", g, self.ln1.bwd(b, ga))


def _build_transformer(b: Builder, m: TransformerModel, x: Ref, y: Ref, batch: int) -> Ref:
    d = m.d_model
    emb = b.param("emb", (m.vocab, d), ("uniform", 1.0))
    pos = b.param("pos", (m.seq_len, d), ("uniform", 0.1))
    blocks = [_Block(b, i, m, batch) for i in range(m.layers)]
    lnf = _LayerNorm(b, "lnf", d)
    head = _Linear(b, "head", d, m.vocab)
    oh = b.op("onehot", x, classes=m.vocab)
    h = b.op("add_pos", b.op("matmul", oh, emb), pos, batch=batch)
    for blk in blocks:
        h = blk.fwd(b, h)
    logits = head.fwd(b, lnf.fwd(b, h))
    loss = b.op("ce_loss", logits, y)
    g = head.bwd(b, b.op("ce_grad", logits, y))
    assert g is not None
    g = lnf.bwd(b, g)
    for blk in reversed(blocks):
        g = blk.bwd(b, g)
    b.grad(pos, b.op("sum_batch", g, batch=batch))
    b.grad(emb, b.op("matmul", oh, g, ta=True))
    return loss


def _data_attrs(spec: TaskSpec) -> dict[str, Any]:
    m = spec.model
    shape: tuple[int, ...]
    if isinstance(m, MLPModel):
        shape, classes = (m.in_dim,), m.classes
    elif isinstance(m, CNNModel):
        shape, classes = (m.in_channels, m.image_size, m.image_size), m.classes
    else:
        shape, classes = (m.seq_len,), m.vocab
    return {
        "kind": spec.data.kind,
        "batch": spec.batch_size,
        "shape": shape,
        "classes": classes,
        "noise": spec.data.noise,
    }


@functools.lru_cache(maxsize=64)
def build_program(spec: TaskSpec) -> Program:
    """The step program of ``spec`` (cached; pure function of the spec)."""
    b = Builder()
    step = b.load("step", (), torch.int64, ("step",))
    key = b.load("rng.key", (), torch.int64, ("key",))
    outputs: dict[str, int] = {}
    if spec.dataset is None:
        data = _data_attrs(spec)
        x = b.op("data_x", step, key, **data)
        y = b.op("data_y", step, key, **data)
    else:
        x_shape, x_dtype, y_shape, _ = dataset_layout(spec, spec.dataset.rows)
        data_x = b.load(DATA_X, x_shape, x_dtype, ("dataset", DATA_X))
        data_y = b.load(DATA_Y, y_shape, torch.int64, ("dataset", DATA_Y))
        outputs[DATA_X], outputs[DATA_Y] = data_x.index, data_y.index  # carried unchanged
        x = b.op("ds_batch", step, data_x, batch=spec.batch_size, flatten=False)
        y = b.op("ds_batch", step, data_y, batch=spec.batch_size, flatten=len(y_shape) > 1)
    m = spec.model
    if isinstance(m, MLPModel):
        loss = _build_mlp(b, m, x, y)
    elif isinstance(m, CNNModel):
        loss = _build_cnn(b, m, x, y, spec.batch_size)
    else:
        loss = _build_transformer(b, m, x, y, spec.batch_size)
    outputs.update({"step": b.op("incr", step).index, "rng.key": key.index})
    opt = spec.optimizer
    nb1p = nb2p = step
    if isinstance(opt, Adam):
        b1p = b.load("opt.b1p", (), torch.float32, ("ones",))
        b2p = b.load("opt.b2p", (), torch.float32, ("ones",))
        nb1p = b.op("adam_pow", b1p, beta=opt.beta1)
        nb2p = b.op("adam_pow", b2p, beta=opt.beta2)
        outputs["opt.b1p"], outputs["opt.b2p"] = nb1p.index, nb2p.index
    for name, p in list(b.params):
        g = b.grads[name]
        shape = tuple(p.value.shape)
        if isinstance(opt, SGD):
            if opt.weight_decay:
                g = b.op("weight_decay", g, p, wd=opt.weight_decay)
            if opt.momentum:
                buf = b.load("opt.buf." + name, shape, torch.float32, ("zeros",))
                g = b.op("sgd_buf", buf, g, momentum=opt.momentum)
                outputs["opt.buf." + name] = g.index
            newp = b.op("sgd_param", p, g, lr=opt.lr)
        else:
            mm = b.load("opt.m." + name, shape, torch.float32, ("zeros",))
            vv = b.load("opt.v." + name, shape, torch.float32, ("zeros",))
            nm = b.op("adam_m", mm, g, beta=opt.beta1)
            nv = b.op("adam_v", vv, g, beta=opt.beta2)
            outputs["opt.m." + name], outputs["opt.v." + name] = nm.index, nv.index
            newp = b.op("adam_param", p, nm, nv, nb1p, nb2p, lr=opt.lr, eps=opt.eps)
        outputs["p." + name] = newp.index
    grads = {n: r.index for n, r in b.grads.items()}
    return Program(tuple(b.nodes), tuple(b.state), outputs, loss.index, dict(b.loads), grads)

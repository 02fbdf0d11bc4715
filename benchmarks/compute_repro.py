"""Reproducible training vs plain torch, the cost of commitments, and one Verde dispute.

Three measurements in one run, each against an anchor measured in the same run:

1. **Training overhead.** Each task kind (MLP, CNN, transformer) at two sizes, trained with
   plain torch (``nn`` modules, autograd, ``torch.optim.Adam``) and with AXL's reproducible
   step program, on the same batches; per-step time and the ratio (target <= 1.5x). Runs
   alternate between the two and the best of each is kept (the machine may be shared). A CUDA
   row (reproducible and plain on the same GPU) runs only where torch sees a GPU.
2. **Commitments.** Hashing the full training state at a checkpoint and building the Merkle
   tree over all checkpoint hashes, against the time of one training step / the whole job.
3. **A dispute over a long job** (1,024 steps by default): a cheating solver against an honest
   verifier; rounds (and the ceil(log2) bound), bytes exchanged (every message msgpack-encoded),
   and the referee's compute as a fraction of the full job (target <= 1%).

    python -m benchmarks.compute_repro [--threads 2] [--steps 1024] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from compute import (
    Adam,
    Cheat,
    CNNModel,
    DataSpec,
    MerkleTree,
    MLPModel,
    Party,
    TaskSpec,
    TransformerModel,
    _native,
    _native_mm,
    build_program,
    init_state,
    play,
    run_step,
    state_hash,
    tensor_hash,
    train,
)
from compute._prims import PRIMS
from compute._program import _data_attrs
from compute._repops import mm_bits

from ._report import line, now

Batch = tuple[torch.Tensor, torch.Tensor]


def _batches(spec: TaskSpec, steps: int, device: str = "cpu") -> list[Batch]:
    attrs = _data_attrs(spec)
    key = torch.tensor(0, dtype=torch.int64)
    out = []
    for t in range(steps):
        step = torch.tensor(t, dtype=torch.int64)
        x, y = PRIMS["data_x"](step, key, **attrs), PRIMS["data_y"](step, key, **attrs)
        out.append((x.to(device), y.to(device)))
    return out


class _Block(nn.Module):
    """A pre-layernorm causal attention block with a ReLU MLP (as compute's transformer)."""

    def __init__(self, m: TransformerModel) -> None:
        super().__init__()
        d = m.d_model
        self.heads = m.heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, m.d_ff), nn.Linear(m.d_ff, d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = (
            z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
            for z in self.qkv(self.ln1(h)).split(d, -1)
        )
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.proj(o.transpose(1, 2).reshape(b, t, d))
        out: torch.Tensor = h + self.fc2(F.relu(self.fc1(self.ln2(h))))
        return out


class _Transformer(nn.Module):
    def __init__(self, m: TransformerModel) -> None:
        super().__init__()
        self.emb = nn.Embedding(m.vocab, m.d_model)
        self.pos = nn.Parameter(torch.zeros(m.seq_len, m.d_model))
        self.blocks = nn.Sequential(*[_Block(m) for _ in range(m.layers)])
        self.lnf, self.head = nn.LayerNorm(m.d_model), nn.Linear(m.d_model, m.vocab)
        self.vocab = m.vocab

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.emb(x) + self.pos)
        logits: torch.Tensor = self.head(self.lnf(h)).reshape(-1, self.vocab)
        return logits


def plain_model(spec: TaskSpec) -> nn.Module:
    """The idiomatic torch model of ``spec``'s architecture."""
    m = spec.model
    if isinstance(m, MLPModel):
        dims = [m.in_dim, *m.hidden, m.classes]
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    if isinstance(m, CNNModel):
        (c1, c2), s = m.channels, m.image_size
        return nn.Sequential(
            nn.Conv2d(m.in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * (s // 4) ** 2, m.classes),
        )
    return _Transformer(m)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def plain_step_time(spec: TaskSpec, batches: list[Batch], device: str = "cpu") -> float:
    """Seconds per step of idiomatic torch training on ``batches`` (data made beforehand)."""
    return _plain_run(spec, batches, device)[0]


def plain_fingerprint(spec: TaskSpec, batches: list[Batch]) -> str:
    """Hash of the parameters after plain torch training (seeded init, deterministic mode)."""
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    try:
        return _plain_run(spec, batches)[1]
    finally:
        torch.use_deterministic_algorithms(False)


def _plain_run(spec: TaskSpec, batches: list[Batch], device: str = "cpu") -> tuple[float, str]:
    assert isinstance(spec.optimizer, Adam)
    net = plain_model(spec).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=spec.optimizer.lr)
    _sync(device)
    start = now()
    for x, y in batches:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        opt.step()
    _sync(device)
    elapsed = (now() - start) / len(batches)
    digest = hashlib.sha256(b"".join(tensor_hash(p) for p in net.parameters())).hexdigest()
    return elapsed, digest


def repro_step_time(spec: TaskSpec, steps: int, device: str = "cpu") -> float:
    """Seconds per step of the reproducible step program (its data generation included)."""
    prog = build_program(spec)
    state = {k: v.to(device) for k, v in init_state(spec).items()}
    _sync(device)
    start = now()
    for _ in range(steps):
        state = run_step(prog, state).state
    _sync(device)
    return (now() - start) / steps


def data_time(spec: TaskSpec, steps: int) -> float:
    start = now()
    _batches(spec, steps)
    return (now() - start) / steps


SHIFT = DataSpec(kind="shift")
# (label, spec, timed steps): each kind at a small size (per-call overhead dominates) and a
# larger one (the GEMMs dominate).


def _mlp(in_dim: int, hidden: int, batch: int) -> TaskSpec:
    return TaskSpec(
        model=MLPModel(in_dim=in_dim, hidden=(hidden, hidden), classes=10), batch_size=batch
    )


def _cnn(size: int, c1: int, c2: int, batch: int) -> TaskSpec:
    model = CNNModel(image_size=size, in_channels=3, channels=(c1, c2), classes=10)
    return TaskSpec(model=model, batch_size=batch)


def _tf(t: int, d: int, layers: int, batch: int) -> TaskSpec:
    model = TransformerModel(
        vocab=2 * t, seq_len=t, d_model=d, heads=max(2, d // 32), d_ff=4 * d, layers=layers
    )
    return TaskSpec(model=model, data=SHIFT, batch_size=batch)


SIZES: list[tuple[str, TaskSpec, int]] = [
    ("MLP 64-256x256-10, batch 128", _mlp(64, 256, 128), 30),
    ("MLP 256-1024x1024-10, batch 256", _mlp(256, 1024, 256), 8),
    ("CNN 3x16x16, 8/16 ch, batch 16", _cnn(16, 8, 16, 16), 20),
    ("CNN 3x32x32, 16/32 ch, batch 32", _cnn(32, 16, 32, 32), 6),
    ("transformer T16 d32 1 layer, batch 8", _tf(16, 32, 1, 8), 20),
    ("transformer T64 d128 2 layers, batch 8", _tf(64, 128, 2, 8), 6),
]
QUICK_SIZES: list[tuple[str, TaskSpec, int]] = [
    ("MLP 16-32x32-10, batch 16", _mlp(16, 32, 16), 4),
    ("CNN 3x8x8, 4/8 ch, batch 8", _cnn(8, 4, 8, 8), 3),
    ("transformer T8 d16 1 layer, batch 4", _tf(8, 16, 1, 4), 3),
]


def best_pair(spec: TaskSpec, steps: int, repeats: int, device: str = "cpu") -> tuple[float, float]:
    """Best-of-``repeats`` seconds per step (plain, reproducible), runs alternating."""
    spec = spec.model_copy(update={"optimizer": Adam(), "steps": steps})
    batches = _batches(spec, steps, device)
    plain_step_time(spec, batches[:2], device)
    repro_step_time(spec, 2, device)
    plain, repro = math.inf, math.inf
    for _ in range(repeats):
        plain = min(plain, plain_step_time(spec, batches, device))
        repro = min(repro, repro_step_time(spec, steps, device))
    return plain, repro


class _GemmShapes(TorchDispatchMode):  # type: ignore[no-untyped-call]  # torch: unannotated
    """Records the operand shapes of every float64 GEMM torch runs inside the block."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # unannotated in torch
        self.shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        if name in ("mm", "bmm") and args[0].dtype == torch.float64:
            self.shapes.append((name, tuple(args[0].shape), tuple(args[1].shape)))
        return func(*args, **(kwargs or {}))


def _gemm_shapes(spec: TaskSpec) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    prog = build_program(spec)
    rec = _GemmShapes()
    with rec:
        run_step(prog, init_state(spec))
    return rec.shapes


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = now()
        fn()
        best = min(best, now() - start)
    return best


def gemm_seconds(spec: TaskSpec, repeats: int) -> tuple[float, float, float]:
    """Seconds per reproducible step spent in its exact GEMMs alone (the same shapes, replayed
    on integers of the same bit width, best of ``repeats`` each): as float64 GEMMs, as int8
    limb GEMMs (compute._native's limb path, including splitting and combining; batched
    products stay float64), and with the faster of the two per product. The floor of this
    scheme with everything else fused away."""
    lib = _native._load()
    f64 = limb = mixed = 0.0
    for name, a, b in _gemm_shapes(spec):
        bits = mm_bits(a[-1])
        qa = torch.randint(-(2**bits), 2**bits + 1, a).to(torch.float64)
        qb = torch.randint(-(2**bits), 2**bits + 1, b).to(torch.float64)
        fn = getattr(torch, name)
        t64 = _best(partial(fn, qa, qb), repeats)
        tl = t64
        if name == "mm" and lib is not None:
            out = torch.empty((a[0], b[1]), dtype=torch.float64)
            tl = _best(partial(_native_mm._limb_mm, lib, qa, qb, bits, out), repeats)
        f64, limb, mixed = f64 + t64, limb + tl, mixed + min(t64, tl)
    return f64, limb, mixed


def _load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def overhead_table(
    sizes: list[tuple[str, TaskSpec, int]], repeats: int, device: str, row: Callable[[str], None]
) -> None:
    """Print one line per task size: plain ms, reproducible ms, the ratios."""
    row(
        f"  {'task (Adam)':<40} {'plain ms':>9} {'repro ms':>9} {'ratio':>7} {'excl. data':>10}"
        f" {'f64 GEMM floor':>14} {'i8-limb floor':>13} {'best mix':>8}"
    )
    for label, spec, steps in sizes:
        plain, repro = best_pair(spec, steps, repeats, device)
        gen = min(data_time(spec, steps) for _ in range(2)) if device == "cpu" else 0.0
        floor = ""
        if device == "cpu":
            f64, limb, mixed = gemm_seconds(spec, 3 * repeats)
            floor = f"{f64 / plain:>13.2f}x {limb / plain:>12.2f}x {mixed / plain:>7.2f}x"
        row(
            f"  {label:<40} {plain * 1e3:>9.2f} {repro * 1e3:>9.2f} {repro / plain:>6.2f}x"
            f" {(repro - gen) / plain:>9.2f}x {floor}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1024, help="steps of the disputed job")
    parser.add_argument("--interval", type=int, default=8, help="checkpoint interval")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args(argv)
    timed_steps = 40
    model = MLPModel(in_dim=64, hidden=(256, 256), classes=10)
    batch = 128
    sizes = SIZES
    if args.quick:
        args.steps, args.repeats, timed_steps = 32, 1, 4
        model, batch, sizes = MLPModel(in_dim=16, hidden=(32,), classes=4), 16, QUICK_SIZES
    torch.set_num_threads(args.threads)
    spec = TaskSpec(model=model, optimizer=Adam(), batch_size=batch, steps=timed_steps)

    # 1. training overhead -----------------------------------------------------------------
    _native.available()  # compile (first use) or load the kernels before anything is timed
    print(
        f"AXL reproducible training, torch {torch.__version__}, {torch.get_num_threads()} threads,"
        f" CPU {torch.backends.cpu.get_cpu_capability()}, compiled kernels: {_native.status},"
        f" int8 limb GEMM {'on' if _native._int_gemm else 'off'} (AXL_INT_GEMM)"
    )
    print(f"  ratio reproducible/plain per task (target <= 1.5x); {_load()} at start")
    overhead_table(sizes, args.repeats, "cpu", print)
    print(f"  {_load()} at end")
    if torch.cuda.is_available():
        print(f"CUDA ({torch.cuda.get_device_name()}): reproducible and plain on the same GPU")
        overhead_table(sizes, args.repeats, "cuda", print)
    else:
        print("CUDA: skipped (torch.cuda.is_available() is False)")
    batches = _batches(spec, timed_steps)
    repro = repro_step_time(spec, timed_steps)  # the MLP step the commitments are compared to

    # bit-identity across thread counts: plain torch (deterministic mode) vs reproducible ----
    plain_fp, repro_fp = set(), set()
    check = spec.model_copy(update={"steps": min(20, timed_steps)})
    other = max(2, args.threads)
    for threads in (1, other):
        torch.set_num_threads(threads)
        plain_fp.add(plain_fingerprint(check, batches[: check.steps]))
        repro_fp.add(train(check).root.hex())
    torch.set_num_threads(args.threads)
    print(
        f"  {check.steps}-step run on 1 vs {other} threads bit-identical: plain torch"
        f" (use_deterministic_algorithms) {len(plain_fp) == 1}, reproducible {len(repro_fp) == 1}"
    )

    # 2. commitments -------------------------------------------------------------------------
    MerkleTree([bytes(32)] * 3)  # the keccak backend loads on first use
    state = init_state(spec)
    n_state = sum(t.numel() for t in state.values())
    reps = 20 if not args.quick else 3
    start = now()
    hashes = [state_hash(state) for _ in range(reps)]
    per_hash = (now() - start) / reps
    leaves = [hashes[0]] * (args.steps + 1)
    start = now()
    MerkleTree(leaves)
    tree_time = now() - start
    print(f"commitments: state of {n_state:,} numbers ({n_state * 4 / 1e6:.2f} MB)")
    print(line("state hash per checkpoint (sha256)", per_hash * 1e3, "ms"))
    print(f"  ratio state hash/reproducible step           {per_hash / repro:>12.3f}x")
    print(line(f"Merkle tree over {args.steps + 1} checkpoints (keccak)", tree_time * 1e3, "ms"))

    # 3. a dispute over a long job -----------------------------------------------------------
    job = TaskSpec(
        model=MLPModel(in_dim=16, hidden=(32,), classes=4),
        optimizer=Adam(),
        batch_size=16,
        steps=args.steps,
        checkpoint_interval=args.interval if args.steps % args.interval == 0 else 1,
    )
    start = now()
    honest_run = train(job)
    job_time = now() - start
    build_program.cache_clear()
    start = now()
    m = len(build_program(job))
    build_time = now() - start  # the referee does this once per task
    bound = math.ceil(math.log2(job.n_checkpoints)) + math.ceil(math.log2(m + 1)) + 4
    print(
        f"dispute: {job.steps}-step job, {job.n_checkpoints} checkpoints, {m} ops per step;"
        f" full job {job_time:.2f} s"
    )
    print(line("  referee, once per task: build the step program", build_time * 1e3, "ms"))
    cheats = [
        Cheat("perturb_weights", step=(7 * job.steps) // 10),
        Cheat("wrong_op", step=job.steps // 3 + 1, op=17),
        Cheat("wrong_final", step=job.steps),
    ]
    for cheat in cheats:
        liar = Party("a", job, cheat=cheat)
        honest = Party("b", job, result=honest_run)
        t0 = time.perf_counter()
        record = play(job, liar, honest)
        game_time = time.perf_counter() - t0
        v = record.verdict
        print(
            f"  cheat {cheat.kind:<16} at step {cheat.step:>5}: winner {v.winner}, rounds"
            f" {v.rounds} (bound {bound}), {record.bytes_exchanged:,} bytes, found step {v.step}"
            f" op {v.op_index} ({v.op})"
        )
        print(line("    referee compute (all its handling)", record.referee_seconds * 1e3, "ms"))
        print(line("    referee: the final one-op check", record.referee_op_seconds * 1e3, "ms"))
        referee = record.referee_seconds + build_time
        print(
            f"    ratio referee (incl. program build)/full job "
            f"{referee / job_time:>10.3%}  (target <= 1%)"
        )
        print(line("    whole game incl. both parties' replies", game_time * 1e3, "ms"))


if __name__ == "__main__":
    main()

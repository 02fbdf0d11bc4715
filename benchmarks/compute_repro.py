"""Reproducible training vs plain torch, the cost of commitments, and one Verde dispute.

Three measurements in one run, each against an anchor measured in the same run:

1. **Training overhead.** The same task (an MLP classifier with Adam) trained with plain torch
   (``nn.Sequential``, autograd, ``torch.optim.Adam``) and with AXL's reproducible step
   program, on the same batches; per-step time and the ratio (target <= 1.5x on 2 threads).
   Runs alternate between the two and the best of each is kept (the machine may be shared).
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
import time

import torch
import torch.nn.functional as F
from torch import nn

from compute import (
    Adam,
    Cheat,
    MerkleTree,
    MLPModel,
    Party,
    TaskSpec,
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

from ._report import line, now


def _batches(spec: TaskSpec, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    attrs = _data_attrs(spec)
    key = torch.tensor(0, dtype=torch.int64)
    out = []
    for t in range(steps):
        step = torch.tensor(t, dtype=torch.int64)
        out.append((PRIMS["data_x"](step, key, **attrs), PRIMS["data_y"](step, key, **attrs)))
    return out


def plain_step_time(spec: TaskSpec, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds per step of idiomatic torch training on ``batches`` (data made beforehand)."""
    return _plain_run(spec, batches)[0]


def plain_fingerprint(spec: TaskSpec, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> str:
    """Hash of the parameters after plain torch training (seeded init, deterministic mode)."""
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    try:
        return _plain_run(spec, batches)[1]
    finally:
        torch.use_deterministic_algorithms(False)


def _plain_run(
    spec: TaskSpec, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[float, str]:
    m = spec.model
    assert isinstance(m, MLPModel) and isinstance(spec.optimizer, Adam)
    dims = [m.in_dim, *m.hidden, m.classes]
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=spec.optimizer.lr)
    start = now()
    for x, y in batches:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    elapsed = (now() - start) / len(batches)
    digest = hashlib.sha256(b"".join(tensor_hash(p) for p in net.parameters())).hexdigest()
    return elapsed, digest


def repro_step_time(spec: TaskSpec, steps: int) -> float:
    """Seconds per step of the reproducible step program (its data generation included)."""
    prog = build_program(spec)
    state = init_state(spec)
    start = now()
    for _ in range(steps):
        state = run_step(prog, state).state
    return (now() - start) / steps


def data_time(spec: TaskSpec, steps: int) -> float:
    start = now()
    _batches(spec, steps)
    return (now() - start) / steps


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
    if args.quick:
        args.steps, args.repeats, timed_steps = 32, 1, 4
        model, batch = MLPModel(in_dim=16, hidden=(32,), classes=4), 16
    torch.set_num_threads(args.threads)
    spec = TaskSpec(model=model, optimizer=Adam(), batch_size=batch, steps=timed_steps)

    # 1. training overhead -----------------------------------------------------------------
    batches = _batches(spec, timed_steps)
    plain_step_time(spec, batches[:2])
    repro_step_time(spec, 2)
    plain, repro = math.inf, math.inf
    for _ in range(args.repeats):
        plain = min(plain, plain_step_time(spec, batches))
        repro = min(repro, repro_step_time(spec, timed_steps))
    gen = min(data_time(spec, timed_steps) for _ in range(args.repeats))
    print(
        f"AXL reproducible training, torch {torch.__version__}, {torch.get_num_threads()} threads,"
        f" CPU {torch.backends.cpu.get_cpu_capability()}"
    )
    hidden = "x".join(str(h) for h in model.hidden)
    print(f"task: MLP {model.in_dim}-{hidden}-{model.classes}, batch {batch}, Adam")
    print(line("anchor: plain torch step (autograd + Adam)", plain * 1e3, "ms"))
    print(line("reproducible step (incl. data generation)", repro * 1e3, "ms"))
    print(line("  of which data generation", gen * 1e3, "ms"))
    print(
        f"  ratio reproducible/plain                     {repro / plain:>12.2f}x  (target <= 1.5)"
    )
    print(f"  ratio (reproducible - data)/plain            {(repro - gen) / plain:>12.2f}x")

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

"""Training on dataset files: safe loading, typed rejection, weights bound to the trace root."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
import safetensors.numpy
import torch
import trio

from axl import blob_id_of
from compute import (
    Adam,
    ChallengeOpened,
    Cheat,
    CNNModel,
    DatasetRef,
    DataSpec,
    GameError,
    InvalidDataset,
    InvalidTaskSpec,
    MLPModel,
    Party,
    TaskSpec,
    TraceError,
    TransformerModel,
    build_program,
    encode_dataset,
    fetch_dataset,
    final_proof,
    load_dataset,
    open_game,
    play,
    train,
    verify_weights,
    weights_bytes,
)

ROWS = 24


def mlp_spec(data: bytes, rows: int = ROWS) -> TaskSpec:
    return TaskSpec(
        model=MLPModel(in_dim=6, hidden=(8,), classes=3),
        steps=6,
        batch_size=4,
        checkpoint_interval=2,
        optimizer=Adam(lr=1e-2),
        dataset=DatasetRef(blob=str(blob_id_of(data)), rows=rows),
    )


def mlp_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(ROWS, 6)).astype(np.float32), rng.integers(0, 3, size=ROWS)


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_training_on_a_dataset_is_reproducible_and_bound_to_it(fmt: str) -> None:
    x, y = mlp_arrays()
    data = encode_dataset(x, y, fmt=fmt)  # type: ignore[arg-type]
    spec = mlp_spec(data)
    dataset = load_dataset(data, spec)
    assert torch.equal(dataset.x, torch.from_numpy(x)) and dataset.y.dtype == torch.int64
    first, second = train(spec, dataset=dataset), train(spec, dataset=dataset)
    assert first.root == second.root
    assert weights_bytes(first) == weights_bytes(second)
    # other data, same shapes: another trace
    x2 = x.copy()
    x2[5, 2] += 1.0
    other = load_dataset(encode_dataset(x2, y), spec)
    assert train(spec, dataset=other).root != first.root
    # the generated-data task of the same shape trains differently too
    plain = spec.model_copy(update={"dataset": None})
    assert train(plain).root != first.root


def test_transformer_and_cnn_datasets() -> None:
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 16, size=(10, 8))
    spec = TaskSpec(
        model=TransformerModel(),
        data=DataSpec(kind="shift"),
        steps=2,
        batch_size=4,
        dataset=DatasetRef(blob=str(blob_id_of(b"t")), rows=10),
    )
    dataset = load_dataset(encode_dataset(tokens, np.roll(tokens, 1, axis=1)), spec)
    assert train(spec, dataset=dataset).root == train(spec, dataset=dataset).root
    cnn = TaskSpec(
        model=CNNModel(),
        steps=2,
        batch_size=4,
        dataset=DatasetRef(blob=str(blob_id_of(b"c")), rows=6),
    )
    images = rng.normal(size=(6, 1, 8, 8))  # float64: rounded to float32 on load
    ds = load_dataset(encode_dataset(images, rng.integers(0, 4, size=6)), cnn)
    assert ds.x.dtype == torch.float32
    train(cnn, dataset=ds)
    with pytest.raises(InvalidDataset):
        load_dataset(encode_dataset(tokens + 100, tokens), spec)  # tokens out of range


def test_a_dataset_task_without_its_dataset_is_a_typed_error() -> None:
    x, y = mlp_arrays()
    spec = mlp_spec(encode_dataset(x, y))
    with pytest.raises(InvalidDataset):
        train(spec)


def npz_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def hostile_files() -> dict[str, bytes]:
    x, y = mlp_arrays()
    good_y = npy_bytes(y)
    huge_header = npy_bytes(np.zeros((1,), np.float32)).replace(b"(1,)", b"(10**12,)"[:4])
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 6), }"
    header += b" " * (118 - len(header)) + b"\n"
    bomb = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    nan_x = x.copy()
    nan_x[0, 0] = np.nan
    return {
        "garbage": b"\x00" * 40,
        "empty": b"",
        "pickled_npz": npz_with({"x.npy": npy_bytes(np.array([object()] * 3)), "y.npy": good_y}),
        "raw_pickle": pickle.dumps({"x": x, "y": y}),
        "extra_member": npz_with({"x.npy": npy_bytes(x), "y.npy": good_y, "z.npy": good_y}),
        "huge_declared_shape": npz_with({"x.npy": bomb, "y.npy": good_y}),
        "truncated_member": npz_with({"x.npy": npy_bytes(x)[:-10], "y.npy": good_y}),
        "short_header": npz_with({"x.npy": huge_header[:20], "y.npy": good_y}),
        "wrong_shape": encode_dataset(x[:, :5], y),
        "wrong_rows": encode_dataset(x[:-1], y[:-1]),
        "float_labels": encode_dataset(x, y.astype(np.float32)),
        "labels_out_of_range": encode_dataset(x, y + 3),
        "negative_labels": encode_dataset(x, y - 1),
        "int_inputs": encode_dataset(x.astype(np.int64), y),
        "nan_inputs": encode_dataset(nan_x, y),
        "overflow_to_inf": encode_dataset(x.astype(np.float64) * 1e300, y),
        "extra_tensor": safetensors.numpy.save({"x": x, "y": y, "z": y}),
        "bf16_like_header": struct.pack("<Q", 60) + b'{"x":{"dtype":"BF16","shape":[1],'
        b'"data_offsets":[0,2]}}' + b"  " * 10,
    }


@pytest.mark.parametrize("name", sorted(hostile_files()))
def test_hostile_dataset_files_are_rejected_typed(name: str) -> None:
    x, y = mlp_arrays()
    spec = mlp_spec(encode_dataset(x, y))
    with pytest.raises(InvalidDataset):
        load_dataset(hostile_files()[name], spec)


def test_dataset_reference_is_validated_and_plain_task_ids_are_unchanged() -> None:
    plain = TaskSpec()
    assert b"dataset" not in plain.canonical_bytes()
    for bad in (
        {"blob": "blob1-18-5-" + "0" * 63, "rows": 1},
        {"blob": str(blob_id_of(b"")), "rows": 0},
        {"blob": str(blob_id_of(b"")), "rows": 1 << 21},
    ):
        with pytest.raises(InvalidTaskSpec):
            TaskSpec.parse({"dataset": bad})
    too_big = {
        "model": {"kind": "mlp", "in_dim": 1024},
        "dataset": {"blob": str(blob_id_of(b"")), "rows": 1 << 20},
    }
    with pytest.raises(InvalidTaskSpec):
        TaskSpec.parse(too_big)
    spec = TaskSpec.parse({"dataset": {"blob": str(blob_id_of(b"")), "rows": 8}})
    assert spec.task_id != plain.task_id


def test_weights_are_bound_to_the_trace_root() -> None:
    x, y = mlp_arrays()
    data = encode_dataset(x, y)
    spec = mlp_spec(data)
    dataset = load_dataset(data, spec)
    result = train(spec, dataset=dataset)
    blob = weights_bytes(result)
    proof = final_proof(result)
    state = verify_weights(spec, blob, root=result.root, proof=proof, dataset=dataset)
    for name, tensor in state.items():
        assert torch.equal(tensor, result.final_state[name])
    # altered weights (a byte in a tensor), another dataset, another root: all refused
    tampered = bytearray(blob)
    tampered[-3] ^= 0x01
    with pytest.raises(TraceError):
        verify_weights(spec, bytes(tampered), root=result.root, proof=proof, dataset=dataset)
    x2 = x.copy()
    x2[0, 0] = 7.0
    other = load_dataset(encode_dataset(x2, y), spec)
    with pytest.raises(TraceError):
        verify_weights(spec, blob, root=result.root, proof=proof, dataset=other)
    with pytest.raises(TraceError):
        verify_weights(spec, blob, root=bytes(32), proof=proof, dataset=dataset)
    # an intermediate checkpoint's state is not the final one
    early = {k: v for k, v in result.checkpoints[1].items() if not k.startswith("data.")}
    early_blob = safetensors.numpy.save({k: v.numpy() for k, v in early.items()})
    with pytest.raises(TraceError):
        verify_weights(spec, early_blob, root=result.root, proof=proof, dataset=dataset)
    # malformed: missing tensor, wrong dtype, not safetensors
    state_np = {k: v.numpy() for k, v in state.items()}
    missing = dict(state_np)
    missing.pop(next(iter(missing)))
    for bad in (
        safetensors.numpy.save(missing),
        safetensors.numpy.save(
            {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in state_np.items()}
        ),
        b"\x00" * 16,
    ):
        with pytest.raises(InvalidDataset):
            verify_weights(spec, bad, root=result.root, proof=proof, dataset=dataset)


@pytest.mark.parametrize(
    ("kind", "op"), [("perturb_weights", 0), ("wrong_final", 0), ("wrong_op", 5)]
)
def test_the_verde_game_settles_a_dataset_task(kind: str, op: int) -> None:
    x, y = mlp_arrays(3)
    data = encode_dataset(x, y)
    spec = mlp_spec(data)
    dataset = load_dataset(data, spec)
    honest = train(spec, dataset=dataset)
    # op 5 is the ds_batch that selects the targets: the referee recomputes it from data.y
    assert build_program(spec).nodes[5].prim == "ds_batch"
    cheat = Party("a", spec, cheat=Cheat(kind, step=3, op=op), dataset=dataset)  # type: ignore[arg-type]
    record = play(spec, cheat, Party("b", spec, result=honest), dataset=dataset)
    assert record.verdict.winner == "b"
    opened = ChallengeOpened(
        game_id="g", task_id=spec.task_id, root_a=bytes(32), root_b=honest.root
    )
    with pytest.raises(GameError):
        open_game(spec, opened)  # the referee cannot recompute a dataset task without the data


def test_a_dispute_on_a_dataset_over_a_frame_keeps_every_message_small() -> None:
    # 40,000 rows x 8 float32 = 1.28 MB: the ds_batch op reading data.x is disputed; the
    # parties open it without the dataset's bytes and the referee uses its own copy.
    rng = np.random.default_rng(5)
    rows = 40_000
    x = rng.normal(size=(rows, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=rows)
    data = encode_dataset(x, y)
    assert len(data) > 1 << 20
    spec = TaskSpec(
        model=MLPModel(in_dim=8, hidden=(8,), classes=3),
        steps=4,
        batch_size=4,
        checkpoint_interval=2,
        optimizer=Adam(lr=1e-2),
        dataset=DatasetRef(blob=str(blob_id_of(data)), rows=rows),
    )
    dataset = load_dataset(data, spec)
    prog = build_program(spec)
    op = next(
        i
        for i, n in enumerate(prog.nodes)
        if n.prim == "ds_batch" and prog.load_index.get(n.inputs[1]) == "data.x"
    )
    honest = Party("b", spec, dataset=dataset)
    for side_cheats in ("a", "b"):
        cheat = Party(side_cheats, spec, cheat=Cheat("wrong_op", step=3, op=op), dataset=dataset)
        a, b = (
            (cheat, Party("b", spec, result=honest.result))
            if side_cheats == "a"
            else (
                Party("a", spec, result=honest.result),
                cheat,
            )
        )
        record = play(spec, a, b, dataset=dataset)
        assert record.verdict.op == "ds_batch" and record.verdict.op_index == op
        assert record.verdict.winner == ("b" if side_cheats == "a" else "a")
        assert max(len(m.encode_payload()) for m in record.transcript) < 64 << 10


def test_a_dataset_blob_larger_than_the_task_can_use_is_refused_before_fetching() -> None:
    from compute._dataset import dataset_size_bound

    data = encode_dataset(*mlp_arrays())
    spec = mlp_spec(data)
    bound = dataset_size_bound(spec)
    assert len(data) <= bound < len(data) + (128 << 10)
    npz = encode_dataset(*(a.astype(np.float64) for a in mlp_arrays()), fmt="npz")
    assert len(npz) <= bound  # float64 inputs and int64 labels fit the bound too
    huge = spec.model_copy(
        update={"dataset": DatasetRef(blob=str(blob_id_of(bytes(bound + 1))), rows=ROWS)}
    )
    with pytest.raises(InvalidDataset, match="not fetched"):
        trio.run(lambda: fetch_dataset(None, huge, from_peers=[]))  # type: ignore[arg-type]

"""Jobs on real data: dataset blobs in, trained weights out, bound to the trace root.

* A dataset is a tensor file with exactly two arrays, ``x`` and ``y``: **safetensors**, or
  **numpy .npz** read member by member with the header checked before any data is allocated
  (never a pickle, never ``torch.load``). :func:`load_dataset` checks it against the task:
  dtypes (``x`` float32/float64 for MLP/CNN, integer tokens for transformers; ``y`` integer),
  shapes, finite values, label and token ranges, sizes; every failure is
  :class:`InvalidDataset`.
* The dataset is part of the training state (``data.x``, ``data.y``), so the step-0 state hash
  and every checkpoint commit to it; the trained weights are the final state without those two
  tensors, as a safetensors blob. :func:`verify_weights` recomputes the final state hash from
  the weights and the dataset and checks it against the committed trace root with the final
  leaf's Merkle proof, so the blob's bytes are bound to the root.
* Role functions over a bus: :func:`publish_dataset` (submitter), :func:`fetch_dataset` and
  :func:`publish_weights` (solver), :func:`fetch_weights` (submitter, verifier).
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import safetensors.numpy
import torch
import trio
from numpy.typing import NDArray

from axl import BlobId, BlobStore, Bus, PeerId

from ._dataset_program import Dataset, dataset_layout
from ._dataset_program import X as DATA_X
from ._dataset_program import Y as DATA_Y
from ._errors import InvalidDataset, TraceError
from ._hashing import state_hash_from, tensor_hash
from ._merkle import leaf_hash, process_proof
from ._program import build_program
from ._spec import TaskSpec
from ._spec_parts import DatasetRef
from ._train import State, TrainResult, train

MAX_DATASET_BYTES = 256 << 20
MAX_WEIGHTS_BYTES = 256 << 20
_NPY_MEMBERS = {"x.npy": "x", "y.npy": "y"}
_FLOATS = (np.float32, np.float64)
_INTS = (np.int32, np.int64)


# --- reading tensor files safely --------------------------------------------------------------


def _read_npy(member: Any, limit: int) -> NDArray[Any]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise InvalidDataset(f"unsupported .npy version {version}")
    if dtype.hasobject or dtype.kind not in "fiu":
        raise InvalidDataset(f"arrays must be numeric, not {dtype}")
    count = 1
    for s in shape:
        count *= s
    size = count * dtype.itemsize
    if size > limit:
        raise InvalidDataset(f"an array of {size} bytes is over the limit of {limit}")
    raw = member.read(size)
    if len(raw) != size:
        raise InvalidDataset("a .npy member is shorter than its header says")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read_npz(data: bytes) -> dict[str, NDArray[Any]]:
    out: dict[str, NDArray[Any]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        if sorted(names) != sorted(_NPY_MEMBERS):
            raise InvalidDataset(f"an .npz dataset holds x.npy and y.npy only, not {names[:8]}")
        for name in names:
            with archive.open(name) as member:
                out[_NPY_MEMBERS[name]] = _read_npy(member, MAX_DATASET_BYTES)
    return out


def read_tensor_file(data: bytes) -> dict[str, NDArray[Any]]:
    """The arrays of a safetensors or .npz file; raises :class:`InvalidDataset`."""
    if len(data) > MAX_DATASET_BYTES:
        raise InvalidDataset(f"{len(data)} bytes is over the limit of {MAX_DATASET_BYTES}")
    try:
        if data[:4] == b"PK\x03\x04":
            return _read_npz(data)
        if len(data) >= 8 and struct.unpack_from("<Q", data)[0] < len(data):
            return dict(safetensors.numpy.load(data))
    except InvalidDataset:
        raise
    except Exception as exc:  # zipfile, numpy and safetensors parse errors, of many types
        raise InvalidDataset(f"not a readable tensor file: {type(exc).__name__}: {exc}") from None
    raise InvalidDataset("not a safetensors or .npz file")


def encode_dataset(
    x: NDArray[Any], y: NDArray[Any], *, fmt: Literal["safetensors", "npz"] = "safetensors"
) -> bytes:
    """A dataset file holding ``x`` and ``y`` (the submitter's side)."""
    if fmt == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y)
        return buffer.getvalue()
    return safetensors.numpy.save({"x": np.ascontiguousarray(x), "y": np.ascontiguousarray(y)})


# --- validation ---------------------------------------------------------------------------------

_FILE_SLACK = 64 << 10  # headers: safetensors JSON, zip entries, .npy headers


def dataset_size_bound(spec: TaskSpec) -> int:
    """The most bytes a valid dataset file for ``spec`` can take (every value as 8 bytes, plus
    room for headers): a larger blob cannot be the task's dataset, so nobody needs to fetch
    it to refuse it. Raises :class:`InvalidDataset` for a spec without a dataset."""
    if spec.dataset is None:
        raise InvalidDataset("this task does not name a dataset")
    x_shape, _, y_shape, _ = dataset_layout(spec, spec.dataset.rows)
    values = 0
    for shape in (x_shape, y_shape):
        count = 1
        for s in shape:
            count *= s
        values += count
    return min(MAX_DATASET_BYTES, 8 * values + _FILE_SLACK)


def load_dataset(data: bytes, spec: TaskSpec) -> Dataset:
    """Parse and validate a dataset file for ``spec``; raises :class:`InvalidDataset`."""
    if spec.dataset is None:
        raise InvalidDataset("this task does not name a dataset")
    arrays = read_tensor_file(data)
    if set(arrays) != {"x", "y"}:
        raise InvalidDataset(f"a dataset holds arrays x and y, not {sorted(arrays)[:8]}")
    x_shape, x_dtype, y_shape, bound = dataset_layout(spec, spec.dataset.rows)
    x, y = arrays["x"], arrays["y"]
    if tuple(x.shape) != x_shape or tuple(y.shape) != y_shape:
        raise InvalidDataset(
            f"shapes x{tuple(x.shape)} y{tuple(y.shape)}; the task needs x{x_shape} y{y_shape}"
        )
    if y.dtype.type not in _INTS:
        raise InvalidDataset(f"y must be int32 or int64, not {y.dtype}")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= bound):
        raise InvalidDataset(f"targets must lie in [0, {bound})")
    if x_dtype == torch.int64:
        if x.dtype.type not in _INTS:
            raise InvalidDataset(f"token inputs must be int32 or int64, not {x.dtype}")
        if x.size and (int(x.min()) < 0 or int(x.max()) >= bound):
            raise InvalidDataset(f"tokens must lie in [0, {bound})")
        tx = torch.from_numpy(x.astype(np.int64))
    else:
        if x.dtype.type not in _FLOATS:
            raise InvalidDataset(f"x must be float32 or float64, not {x.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            x32 = x.astype(np.float32)
        if not np.isfinite(x32).all():
            raise InvalidDataset("x holds NaN or infinite values (after rounding to float32)")
        tx = torch.from_numpy(x32)
    return Dataset(tx.contiguous(), torch.from_numpy(y.astype(np.int64)).contiguous())


# --- weights bound to the trace root ----------------------------------------------------------


def weights_bytes(result: TrainResult) -> bytes:
    """The trained weights blob: the final state (parameters, optimiser state, step, key) as
    safetensors, without the dataset tensors."""
    state = {
        name: t.detach().cpu().contiguous().numpy()
        for name, t in result.final_state.items()
        if name not in (DATA_X, DATA_Y)
    }
    return safetensors.numpy.save(state)


def load_weights(data: bytes, spec: TaskSpec) -> State:
    """Parse a weights blob and check it holds exactly the task's final-state tensors (names,
    shapes, dtypes); raises :class:`InvalidDataset`."""
    if len(data) > MAX_WEIGHTS_BYTES:
        raise InvalidDataset(f"weights of {len(data)} bytes are over {MAX_WEIGHTS_BYTES}")
    try:
        arrays = safetensors.numpy.load(data)
    except Exception as exc:
        raise InvalidDataset(f"not a safetensors file: {type(exc).__name__}") from None
    wanted = {e.name: e for e in build_program(spec).state if e.name not in (DATA_X, DATA_Y)}
    if set(arrays) != set(wanted):
        raise InvalidDataset("the weights' tensor names are not the task's state")
    state: State = {}
    for name, entry in wanted.items():
        array = arrays[name]
        tensor = torch.from_numpy(np.array(array, copy=True))
        if tuple(tensor.shape) != entry.shape or tensor.dtype != entry.dtype:
            raise InvalidDataset(f"weights tensor {name} has the wrong shape or dtype")
        state[name] = tensor
    return state


def final_state_hash(weights: Mapping[str, torch.Tensor], dataset: Dataset | None) -> bytes:
    """The state hash of a final state given as weights (+ the dataset's tensors)."""
    hashes = {name: tensor_hash(t) for name, t in weights.items()}
    if dataset is not None:
        hashes[DATA_X], hashes[DATA_Y] = tensor_hash(dataset.x), tensor_hash(dataset.y)
    return state_hash_from(hashes)


def final_proof(result: TrainResult) -> list[bytes]:
    """The Merkle proof of the final checkpoint's leaf under the trace root."""
    return result.tree.proof(result.spec.n_checkpoints - 1)


def verify_weights(
    spec: TaskSpec,
    data: bytes,
    *,
    root: bytes,
    proof: Iterable[bytes],
    dataset: Dataset | None,
) -> State:
    """The final state from a weights blob, after checking it against the committed trace
    ``root``: raises :class:`InvalidDataset` for a malformed blob and :class:`TraceError`
    when its hash (with the dataset) is not the root's final leaf."""
    state = load_weights(data, spec)
    leaf = leaf_hash(spec.n_checkpoints - 1, final_state_hash(state, dataset))
    if process_proof(leaf, list(proof)) != root:
        raise TraceError("the weights are not the final state committed by the trace root")
    return state


# --- the roles' calls over a bus --------------------------------------------------------------


def _store(bus: Bus) -> BlobStore:
    if bus.blobs is None:
        raise InvalidDataset("the bus has no blob store (open_bus(..., blobs=BlobStore(...)))")
    return bus.blobs.store


def publish_dataset(
    bus: Bus, data: bytes, *, rows: int, to: Iterable[PeerId] | None = None
) -> DatasetRef:
    """Store and offer a dataset file (pinned); returns the reference for ``TaskSpec.dataset``."""
    blob_id = _store(bus).put_bytes(data, pin=True)
    bus.offer(blob_id, to=to)
    return DatasetRef(blob=str(blob_id), rows=rows)


async def fetch_dataset(
    bus: Bus, spec: TaskSpec, *, from_peers: Iterable[PeerId], timeout: float | None = None
) -> Dataset:
    """Fetch the task's dataset blob and validate it; raises ``BlobUnavailable``,
    :class:`InvalidDataset`."""
    if spec.dataset is None:
        raise InvalidDataset("this task does not name a dataset")
    blob_id = BlobId.parse(spec.dataset.blob)
    if blob_id.size > dataset_size_bound(spec):
        raise InvalidDataset(
            f"a dataset blob of {blob_id.size} bytes is over what the task can use "
            f"({dataset_size_bound(spec)} bytes): not fetched"
        )
    await bus.fetch(blob_id, from_peers=from_peers, timeout=timeout)
    data = await _store(bus).read_bytes_async(blob_id, max_size=MAX_DATASET_BYTES)
    return await trio.to_thread.run_sync(load_dataset, data, spec)


async def train_in_thread(spec: TaskSpec, dataset: Dataset | None = None) -> TrainResult:
    """:func:`train` in a worker thread, so the bus keeps running meanwhile."""
    return await trio.to_thread.run_sync(lambda: train(spec, dataset=dataset))


def publish_weights(
    bus: Bus, result: TrainResult, *, to: Iterable[PeerId] | None = None
) -> tuple[BlobId, list[bytes]]:
    """Store, pin and offer the trained weights; returns the blob id and the final leaf's
    proof (send both with the trace root)."""
    blob_id = _store(bus).put_bytes(weights_bytes(result), pin=True)
    bus.offer(blob_id, to=to)
    return blob_id, final_proof(result)


async def fetch_weights(
    bus: Bus,
    spec: TaskSpec,
    blob_id: BlobId,
    *,
    root: bytes,
    proof: Iterable[bytes],
    dataset: Dataset | None,
    from_peers: Iterable[PeerId],
    timeout: float | None = None,
) -> State:
    """Fetch a weights blob and verify it against the trace root (see
    :func:`verify_weights`); raises ``BlobUnavailable``, :class:`InvalidDataset`,
    :class:`TraceError`."""
    if blob_id.size > MAX_WEIGHTS_BYTES:
        raise InvalidDataset(f"the weights blob is over {MAX_WEIGHTS_BYTES} bytes")
    await bus.fetch(blob_id, from_peers=from_peers, timeout=timeout)
    data = await _store(bus).read_bytes_async(blob_id, max_size=MAX_WEIGHTS_BYTES)
    proof = list(proof)
    return await trio.to_thread.run_sync(
        lambda: verify_weights(spec, data, root=root, proof=proof, dataset=dataset)
    )

"""End to end over the bus: a submitter with its own dataset file has a solver train on it and
gets the trained weights back as a blob, bit-identical to a local reproducible run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trio

from axl import (
    BlobId,
    BlobStore,
    BlobUnavailable,
    Context,
    Identity,
    MemoryNetwork,
    Message,
    open_bus,
)
from compute import (
    Adam,
    DatasetRef,
    MLPModel,
    TaskSpec,
    TraceError,
    encode_dataset,
    fetch_dataset,
    fetch_weights,
    load_dataset,
    publish_dataset,
    publish_weights,
    train,
    train_in_thread,
    weights_bytes,
)


class TrainJob(Message, tag="test.dataset_train_job"):
    spec: str


class TrainDone(Message, tag="test.dataset_train_done"):
    weights: str
    root: bytes
    proof: list[bytes]


@pytest.mark.parametrize("cheat", [False, True])
async def test_submitter_gets_weights_equal_to_a_local_run(tmp_path: Path, cheat: bool) -> None:
    rng = np.random.default_rng(42)
    rows = 32
    x = rng.normal(size=(rows, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    dataset_file = tmp_path / "mine.safetensors"
    dataset_file.write_bytes(encode_dataset(x, y))

    submitter, solver = Identity.from_seed(b"\x71" * 32), Identity.from_seed(b"\x72" * 32)
    network = MemoryNetwork()
    async with (
        network.connect(submitter.peer_id) as t1,
        network.connect(solver.peer_id) as t2,
        open_bus(submitter, t1, blobs=BlobStore(tmp_path / "sub", max_bytes=1 << 24)) as sub,
        open_bus(solver, t2, blobs=BlobStore(tmp_path / "sol", max_bytes=1 << 24)) as sol,
    ):

        async def on_job(job: TrainJob, ctx: Context) -> TrainDone:
            spec = TaskSpec.parse(job.spec)
            dataset = await fetch_dataset(sol, spec, from_peers=[ctx.sender], timeout=30)
            result = await train_in_thread(spec, dataset)
            if cheat:  # serve the weights of another run under the honest root
                wrong = train(spec.model_copy(update={"seed": 99}), dataset=dataset)
                assert sol.blobs is not None
                blob_id = sol.blobs.store.put_bytes(weights_bytes(wrong))
                sol.offer(blob_id, to=[ctx.sender])
                _, proof = publish_weights(sol, result, to=[ctx.sender])
            else:
                blob_id, proof = publish_weights(sol, result, to=[ctx.sender])
            return TrainDone(weights=str(blob_id), root=result.root, proof=proof)

        sol.on(TrainJob, on_job)

        # the submitter: publish the file, name it in the task, ask the solver
        data = dataset_file.read_bytes()
        ref = publish_dataset(sub, data, rows=rows, to=[solver.peer_id])
        spec = TaskSpec(
            model=MLPModel(in_dim=8, hidden=(16,), classes=4),
            steps=8,
            batch_size=8,
            checkpoint_interval=4,
            optimizer=Adam(lr=1e-2),
            dataset=ref,
        )
        done = await sub.request(
            solver.peer_id, TrainJob(spec=spec.canonical_bytes().decode()), timeout=60
        )
        assert isinstance(done, TrainDone)
        mine = load_dataset(data, spec)
        local = train(spec, dataset=mine)
        assert done.root == local.root
        weights_id = BlobId.parse(done.weights)
        if cheat:
            with pytest.raises(TraceError):
                await fetch_weights(
                    sub,
                    spec,
                    weights_id,
                    root=done.root,
                    proof=done.proof,
                    dataset=mine,
                    from_peers=[solver.peer_id],
                    timeout=30,
                )
            return
        state = await fetch_weights(
            sub,
            spec,
            weights_id,
            root=done.root,
            proof=done.proof,
            dataset=mine,
            from_peers=[solver.peer_id],
            timeout=30,
        )
        assert sub.blobs is not None
        assert sub.blobs.store.read_bytes(weights_id, max_size=1 << 24) == weights_bytes(local)
        for name, tensor in local.final_state.items():
            if not name.startswith("data."):
                assert torch.equal(state[name], tensor)
        # the dataset was offered to the solver only
        outsider = Identity.from_seed(b"\x73" * 32)
        async with (
            network.connect(outsider.peer_id) as t3,
            open_bus(outsider, t3, blobs=BlobStore(tmp_path / "out", max_bytes=1 << 24)) as out,
        ):
            with pytest.raises(BlobUnavailable):
                await out.fetch(
                    BlobId.parse(spec.dataset.blob if spec.dataset else ""),
                    from_peers=[submitter.peer_id],
                )
        assert isinstance(ref, DatasetRef)
        await trio.lowlevel.checkpoint()
